/* Session configuration (docs/config.md), parsed from YAML with libyaml.
 * Command-line flags override fields after parsing. */
#ifndef UNI_CONFIG_H
#define UNI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define UNI_CFG_MAX_LINKS 1024
#define UNI_CFG_MAX_RANK_OVERRIDES 256
#define UNI_CFG_MAX_KERNELS 64
#define UNI_CFG_MAX_SWITCHES 64
#define UNI_CFG_MAX_TRUNKS 256
#define UNI_CFG_MAX_ATTACH 1024
#define UNI_CFG_SWITCH_NAME 32
/* The longest route: a rank's uplink, one link per switch-to-switch hop,
 * the other rank's downlink. */
#define UNI_CFG_MAX_ROUTE (UNI_CFG_MAX_SWITCHES + 1)
/* Measured on a real shaped network (docs/simulate.md, "Send completion"). */
#define UNI_DEFAULT_SEND_BUFFER 640000ull

enum uni_net_model {
	UNI_NET_ALPHA_BETA = 0,
	UNI_NET_NIC = 1,
	UNI_NET_TOPOLOGY = 2, /* the nic model over switches and links */
};

enum uni_nccl_algo {
	UNI_NCCL_ALGO_AUTO = 0, /* NCCL's choice by size */
	UNI_NCCL_ALGO_RING = 1,
	UNI_NCCL_ALGO_TREE = 2,
	UNI_NCCL_ALGO_PAT = 3,  /* AllGather, ReduceScatter with one rank a node */
};

/* NCCL's protocols (docs/nccl.md "Protocols"). */
enum uni_nccl_proto {
	UNI_NCCL_PROTO_AUTO = 0, /* NCCL's choice by size */
	UNI_NCCL_PROTO_LL = 1,
	UNI_NCCL_PROTO_LL128 = 2,
	UNI_NCCL_PROTO_SIMPLE = 3,
};

/* What joins the GPUs of a node (nccl.intra_node): NCCL's hop latencies
 * within a node (docs/nccl.md "Nodes"). */
enum uni_nccl_intra {
	UNI_NCCL_INTRA_NVLINK = 0,
	UNI_NCCL_INTRA_PCI = 1,
};

struct uni_link_cfg {
	int32_t from, to;     /* ranks; -1 = any */
	uint64_t latency_ns;
	double bandwidth_bps; /* bits per second */
	int bandwidth_given;  /* 0: network.default's, capped by the NICs (uni_config_link) */
};

/* network.topology: switches, the ranks on each (a rank's NIC is its cable
 * to its switch) and full-duplex links between switches. */
struct uni_switch_cfg {
	char name[UNI_CFG_SWITCH_NAME];
	uint64_t latency_ns;  /* of each of its ranks' cables */
	double bandwidth_bps; /* of each cable, each way; 0: the rank's NIC */
};

struct uni_trunk_cfg {
	uint16_t a, b;        /* switches */
	uint64_t latency_ns;
	double bandwidth_bps; /* each direction */
};

struct uni_kernel_cfg {
	char match[128]; /* glob */
	double slowdown;
};

struct uni_config {
	uint32_t mode;          /* enum uni_mode, default simulate */
	int strict;             /* 1: a rank that cannot attach stops (default 0) */
	uint32_t net_model;     /* enum uni_net_model, default alpha-beta */
	uint64_t latency_ns;    /* network.default.latency, default 0 */
	double bandwidth_bps;   /* network.default.bandwidth, default 1 Gbit/s */
	uint64_t send_buffer;   /* network.send_buffer: bytes a write may leave behind
	                           when it completes; UINT64_MAX = unlimited */
	uint32_t nlinks;
	struct uni_link_cfg links[UNI_CFG_MAX_LINKS];
	/* network.ranks: per-rank NIC capacities, bits per second; 0 = not
	 * given (network.default.bandwidth). */
	uint32_t nrank_nics;
	struct { int32_t rank; double uplink_bps, downlink_bps; } rank_nics[UNI_CFG_MAX_RANK_OVERRIDES];
	uint32_t nswitches;
	struct uni_switch_cfg switches[UNI_CFG_MAX_SWITCHES];
	uint32_t ntrunks;
	struct uni_trunk_cfg trunks[UNI_CFG_MAX_TRUNKS];
	/* Ranks a switch names (the others are on switch 0), in file order;
	 * a rank on several switches has a cable to each: its first is its
	 * primary one, the others are numbered (extra) in order. */
	uint32_t nattach;
	struct { int32_t rank; uint16_t sw; int16_t extra; /* -1: primary */ } attach[UNI_CFG_MAX_ATTACH];
	uint32_t nextra;
	/* Routes, filled when the file is read: route_in[s][d] is the
	 * directed trunk (2 i: a to b, 2 i + 1: b to a) by which the route
	 * from switch s reaches switch d (UINT16_MAX: s == d), route_lat and
	 * route_hops its latency and links. */
	uint16_t route_in[UNI_CFG_MAX_SWITCHES][UNI_CFG_MAX_SWITCHES];
	uint64_t route_lat[UNI_CFG_MAX_SWITCHES][UNI_CFG_MAX_SWITCHES];
	uint8_t route_hops[UNI_CFG_MAX_SWITCHES][UNI_CFG_MAX_SWITCHES];
	double slowdown;        /* devices.default.slowdown, default 1.0 */
	uint32_t nrank_slowdowns;
	struct { int32_t rank; double slowdown; } rank_slowdowns[UNI_CFG_MAX_RANK_OVERRIDES];
	uint32_t nkernels;
	struct uni_kernel_cfg kernels[UNI_CFG_MAX_KERNELS];
	char trace_path[512];   /* may contain {session}; default uni-trace/{session}.unitrace */
	int trace_stacks;       /* default 1 */
	uint32_t nccl_algo;     /* nccl.algorithm (enum uni_nccl_algo), default auto */
	uint32_t nccl_proto;    /* nccl.protocol (enum uni_nccl_proto), default auto */
	uint32_t nccl_ppn;      /* nccl.ranks_per_node, default 1 */
	uint32_t nccl_intra;    /* nccl.intra_node (enum uni_nccl_intra), default nvlink */
};

/* Fills defaults. */
void uni_config_defaults(struct uni_config *c);

/* Parses a YAML file over the defaults already in c. Returns 0, or -1 with
 * a one-line message "FILE:LINE: key 'K': what is wrong" in err. Unknown
 * keys, wrong units and impossible values are errors. */
int uni_config_load(struct uni_config *c, const char *path, char *err, size_t errlen);

/* Same, from a string (name is used in messages). */
int uni_config_parse(struct uni_config *c, const char *yaml, size_t len,
		     const char *name, char *err, size_t errlen);

/* Units. Each returns 0 or -1 (with no message; the caller names the key).
 * Durations: "2ms", "350us", "1.5s", "10ns", "0". Bandwidths: "100Mbit",
 * "1Gbit", "12.5MB/s", "800kbit/s", "1e9bit" (bits/s out; decimal prefixes;
 * "B" is bytes, "bit" bits; a bare number is an error). */
int uni_parse_duration(const char *s, uint64_t *ns);
int uni_parse_bandwidth(const char *s, double *bps);
/* Sizes: "640kB", "1MiB", "0", "unlimited" (UINT64_MAX). */
int uni_parse_size(const char *s, uint64_t *bytes);

/* A rank's NIC after network.ranks: its uplink and downlink in bits per
 * second (network.default.bandwidth where not given). */
double uni_config_uplink(const struct uni_config *c, int rank);
double uni_config_downlink(const struct uni_config *c, int rank);

/* The link from rank a to rank b: the first network.links entry that
 * matches, else network.default's latency; its bandwidth, else (no entry,
 * or one without a bandwidth) the least of the default bandwidth, a's
 * uplink and b's downlink. Under topology: the route's latency and the
 * least capacity on it. */
void uni_config_link(const struct uni_config *c, int a, int b, uint64_t *latency_ns, double *bps);

/* "alpha-beta", "nic" or "topology". */
const char *uni_config_model_name(uint32_t model);

/* The network models with flows sharing capacities (nic, topology). */
int uni_config_fluid(const struct uni_config *c);

/* The first switch a rank is on (topology; 0 for ranks no switch names). */
int uni_config_switch_of(const struct uni_config *c, int rank);

/* Under topology: the route from rank a to rank b as the links it crosses
 * in order, numbered for a network of nranks ranks: a's cable up to the
 * switch the route leaves from (a for its primary cable, 2 nranks +
 * 2 ntrunks + 2 k for its k-th extra one), the directed switch-to-switch
 * links (2 nranks + the directed trunk index), b's cable down (nranks + b,
 * or 2 nranks + 2 ntrunks + 2 k + 1). The route is the one of least
 * latency over every pair of a's and b's switches (ties: fewer links, then
 * the cables given first). Returns how many links (at most
 * UNI_CFG_MAX_ROUTE), with the route's latency (a's cable, the links, b's
 * cable). Under nic: a's uplink and b's downlink, with the pair's latency. */
int uni_config_route(const struct uni_config *c, int a, int b, uint32_t nranks,
		     uint32_t *links, uint64_t *latency_ns);

/* Capacity of one of those links in bits per second. */
double uni_config_route_capacity(const struct uni_config *c, uint32_t link, uint32_t nranks);

/* How many links that numbering has for nranks ranks. */
uint32_t uni_config_route_links(const struct uni_config *c, uint32_t nranks);

/* The rank and switch of a cable link (2 nranks + 2 ntrunks and on, or
 * below 2 nranks); returns 0 if link is not a cable. *up: 1 rank to switch. */
int uni_config_cable(const struct uni_config *c, uint32_t link, uint32_t nranks, int *rank, int *sw, int *up);

/* Slowdown of a rank after overrides. */
double uni_config_rank_slowdown(const struct uni_config *c, int rank);

/* Expands {session} in the trace path into out. */
void uni_config_trace_path(const struct uni_config *c, const char *session, char *out, size_t len);

#endif
