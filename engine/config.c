/* Session configuration: YAML (libyaml document API) into struct uni_config.
 *
 * The whole document is loaded first, then walked against a fixed schema.
 * Every node keeps its start mark, so each error names the file, the 1-based
 * line and the dotted key ("network.links[2].latency"). Parsing goes into a
 * scratch copy of the caller's config, which is written back only when the
 * whole file is valid: a failed load leaves the caller's config untouched.
 *
 * Reference for users: docs/config.md. Keep the two in step. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "uni/common.h"
#include "uni/config.h"

#define RANK_MAX 65535
#define FILE_MAX (16u << 20) /* a config is a few lines; refuse huge files */
#define PATH_LEN 256         /* dotted key path in messages */
#define SHOW_LEN 48          /* user text quoted in messages is cut here */

/* Bits of ctx.link_set: which optional fields a link gave. */
#define LINK_HAS_LATENCY 1u
#define LINK_HAS_BANDWIDTH 2u

struct ctx {
	const char *name; /* file name for messages */
	yaml_document_t *doc;
	struct uni_config *c; /* scratch copy being filled */
	char *err;
	size_t errlen;
	int links_given; /* the file had network.links */
	yaml_node_t *links_node;
	uint8_t link_set[UNI_CFG_MAX_LINKS];
	uint32_t link_line[UNI_CFG_MAX_LINKS];
	uint32_t rank_line[UNI_CFG_MAX_RANK_OVERRIDES];
	uint32_t nic_line[UNI_CFG_MAX_RANK_OVERRIDES];
	/* network.topology, checked once the whole file is read (links may
	 * come before the switches they name) */
	yaml_node_t *model_node;    /* network.model, for its line */
	yaml_node_t *topology_node;
	uint32_t switch_line[UNI_CFG_MAX_SWITCHES];
	uint32_t attach_line[UNI_CFG_MAX_ATTACH];
	yaml_node_t *attach_node[UNI_CFG_MAX_ATTACH];
	yaml_node_t *trunk_end[UNI_CFG_MAX_TRUNKS][2];
	char trunk_path[UNI_CFG_MAX_TRUNKS][64];
	uint8_t trunk_set[UNI_CFG_MAX_TRUNKS];
};

/* ---- messages ---------------------------------------------------------- */

/* Messages are one line: control characters from user text (a key may hold
 * a newline through a quoted escape) become '?'. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Copies user text for quoting in a message, cut to SHOW_LEN bytes on a
 * UTF-8 character boundary, with "..." when cut. */
static const char *show(const char *s, char *buf, size_t len)
{
	size_t n = strlen(s);

	if (n < len && n <= SHOW_LEN) {
		memcpy(buf, s, n + 1);
		return buf;
	}
	n = SHOW_LEN < len - 4 ? SHOW_LEN : len - 4;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) UNI_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	one_line(err);
}

static unsigned node_line(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

/* "FILE:LINE: key 'PATH': WHY". Always returns -1. */
static int fail(struct ctx *x, const yaml_node_t *n, const char *path,
		const char *fmt, ...) UNI_PRINTF(4, 5);
static int fail(struct ctx *x, const yaml_node_t *n, const char *path,
		const char *fmt, ...)
{
	char why[384], p[PATH_LEN + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	set_err(x->err, x->errlen, "%s:%u: key '%s': %s", x->name, node_line(n),
		show(path, p, sizeof(p)), why);
	return -1;
}

/* ---- numbers and units ------------------------------------------------- */

/* Length of an unsigned decimal number at s: digits, optional fraction,
 * optional exponent ("12", "12.5", ".5", "1e9", "2.5E-3"); 0 if none.
 * Written out because strtod also takes "nan", "inf" and hex, and would eat
 * the "e" of a unit; the span found here is what goes to strtod. */
static size_t scan_number(const char *s)
{
	size_t i = 0, digits = 0;

	while (s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (s[i] == '.') {
		i++;
		while (s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return 0;
	if (s[i] == 'e' || s[i] == 'E') {
		size_t j = i + 1;

		if (s[j] == '+' || s[j] == '-')
			j++;
		if (s[j] >= '0' && s[j] <= '9') {
			while (s[j] >= '0' && s[j] <= '9')
				j++;
			i = j;
		}
	}
	return i;
}

/* strtod over exactly n bytes. Returns 0, or -1 if the text is absurdly
 * long. Overflow gives HUGE_VAL, which callers reject as not finite. */
static int span_to_double(const char *s, size_t n, double *v)
{
	char buf[64];

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*v = strtod(buf, NULL);
	return 0;
}

/* Splits "NUMBER [spaces] UNIT [spaces]" and fills *v and the unit.
 * Returns 0, or -1 with a reason in why. what names the kind of value,
 * example is a good value for hints. */
static int split_quantity(const char *s, double *v, char *unit, size_t unitlen,
			  const char *what, const char *example,
			  char *why, size_t whylen)
{
	char sh[SHOW_LEN + 8];
	size_t n, ulen;
	const char *u;

	if (!*s) {
		set_err(why, whylen, "empty value; write a %s such as %s", what, example);
		return -1;
	}
	n = scan_number(s[0] == '-' ? s + 1 : s);
	if (!n) {
		set_err(why, whylen, "'%s' is not a %s; write e.g. %s", show(s, sh, sizeof(sh)),
			what, example);
		return -1;
	}
	if (s[0] == '-') {
		set_err(why, whylen, "'%s' is negative", show(s, sh, sizeof(sh)));
		return -1;
	}
	if (span_to_double(s, n, v) || !isfinite(*v)) {
		set_err(why, whylen, "'%s' is too large", show(s, sh, sizeof(sh)));
		return -1;
	}
	u = s + n;
	while (*u == ' ' || *u == '\t')
		u++;
	ulen = strlen(u);
	while (ulen && (u[ulen - 1] == ' ' || u[ulen - 1] == '\t'))
		ulen--;
	if (ulen >= unitlen) {
		set_err(why, whylen, "'%s' has an unknown unit", show(s, sh, sizeof(sh)));
		return -1;
	}
	memcpy(unit, u, ulen);
	unit[ulen] = '\0';
	return 0;
}

static int parse_duration_why(const char *s, uint64_t *ns, char *why, size_t whylen)
{
	static const struct { const char *name; double mul; } units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
	};
	char unit[32], sh[SHOW_LEN + 8], num[48];
	double v, t;
	size_t i;

	if (split_quantity(s, &v, unit, sizeof(unit), "duration", "2ms or 350us",
			   why, whylen))
		return -1;
	if (!unit[0]) {
		/* Zero is zero in any unit, so a bare 0 (or 0.0) is allowed. */
		if (v == 0) {
			*ns = 0;
			return 0;
		}
		snprintf(num, sizeof(num), "%.*s", (int)scan_number(s), s);
		set_err(why, whylen, "'%s' has no unit; write e.g. %sms (units: ns, us, ms, s)",
			show(s, sh, sizeof(sh)), num);
		return -1;
	}
	for (i = 0; i < UNI_ARRAY_LEN(units); i++)
		if (!strcmp(unit, units[i].name))
			break;
	if (i == UNI_ARRAY_LEN(units)) {
		set_err(why, whylen, "'%s' has an unknown unit '%s'; use ns, us, ms or s",
			show(s, sh, sizeof(sh)), unit);
		return -1;
	}
	t = v * units[i].mul;
	/* 2^63 ns is 292 years; anything larger is a typo, and keeping below it
	 * leaves room for sums of durations downstream. */
	if (!(t < 9223372036854775807.0)) {
		set_err(why, whylen, "'%s' is too large", show(s, sh, sizeof(sh)));
		return -1;
	}
	*ns = (uint64_t)(t + 0.5); /* t >= 0: round half up, no libm needed */
	return 0;
}

/* Every accepted bandwidth unit, exactly as written. Decimal prefixes;
 * "B" is bytes, so those units are eight bits per byte. */
static const struct { const char *name; double mul; } bw_units[] = {
	{ "bit", 1 },		{ "bit/s", 1 },		{ "bps", 1 },
	{ "kbit", 1e3 },	{ "kbit/s", 1e3 },	{ "kbps", 1e3 },
	{ "Kbit", 1e3 },	{ "Kbit/s", 1e3 },	{ "Kbps", 1e3 },
	{ "Mbit", 1e6 },	{ "Mbit/s", 1e6 },	{ "Mbps", 1e6 },
	{ "Gbit", 1e9 },	{ "Gbit/s", 1e9 },	{ "Gbps", 1e9 },
	{ "Tbit", 1e12 },	{ "Tbit/s", 1e12 },	{ "Tbps", 1e12 },
	{ "B/s", 8 },
	{ "kB/s", 8e3 },	{ "KB/s", 8e3 },
	{ "MB/s", 8e6 },	{ "GB/s", 8e9 },	{ "TB/s", 8e12 },
};

/* For a unit that is not in bw_units: is it one where bits and bytes (or
 * mega and milli) cannot be told apart, such as "mb", "MB", "Gb", "MBps"?
 * Returns the prefix to suggest ("", "k", "M", "G", "T") or NULL. */
static const char *bw_ambiguous(const char *unit)
{
	char base[8];
	size_t n = strlen(unit);

	if (n > 2 && (!strcasecmp(unit + n - 2, "/s") || !strcasecmp(unit + n - 2, "ps")))
		n -= 2;
	if (n == 0 || n > 2)
		return NULL;
	memcpy(base, unit, n);
	base[n] = '\0';
	if (base[n - 1] != 'b' && base[n - 1] != 'B')
		return NULL;
	if (n == 1)
		return "";
	switch (base[0]) {
	case 'k': case 'K': return "k";
	case 'm': case 'M': return "M";
	case 'g': case 'G': return "G";
	case 't': case 'T': return "T";
	}
	return NULL;
}

static int parse_bandwidth_why(const char *s, double *bps, char *why, size_t whylen)
{
	char unit[32], sh[SHOW_LEN + 8], num[48];
	const char *pfx;
	double v, t;
	size_t i;

	if (split_quantity(s, &v, unit, sizeof(unit), "bandwidth", "100Mbit or 12.5MB/s",
			   why, whylen))
		return -1;
	snprintf(num, sizeof(num), "%.*s", (int)scan_number(s), s);
	if (!unit[0]) {
		set_err(why, whylen, "'%s' has no unit; write e.g. %sMbit or 12.5MB/s",
			show(s, sh, sizeof(sh)), num);
		return -1;
	}
	for (i = 0; i < UNI_ARRAY_LEN(bw_units); i++)
		if (!strcmp(unit, bw_units[i].name))
			break;
	if (i == UNI_ARRAY_LEN(bw_units)) {
		pfx = bw_ambiguous(unit);
		if (pfx) {
			set_err(why, whylen, "'%s': unit '%s' is ambiguous; write %s%sbit for bits "
				"per second or %s%sB/s for bytes per second",
				show(s, sh, sizeof(sh)), unit, num, pfx, num, pfx);
			return -1;
		}
		for (i = 0; i < UNI_ARRAY_LEN(bw_units); i++)
			if (!strcasecmp(unit, bw_units[i].name))
				break;
		if (i < UNI_ARRAY_LEN(bw_units))
			set_err(why, whylen, "'%s': unit '%s' has the wrong case; write %s%s",
				show(s, sh, sizeof(sh)), unit, num, bw_units[i].name);
		else
			set_err(why, whylen, "'%s' has an unknown unit '%s'; use bit, kbit, Mbit, "
				"Gbit, Tbit (also as Mbit/s or Mbps) or B/s, kB/s, MB/s, GB/s, TB/s",
				show(s, sh, sizeof(sh)), unit);
		return -1;
	}
	t = v * bw_units[i].mul;
	if (!isfinite(t)) {
		set_err(why, whylen, "'%s' is too large", show(s, sh, sizeof(sh)));
		return -1;
	}
	if (!(t > 0)) {
		set_err(why, whylen, "'%s' is zero; a bandwidth must be greater than zero",
			show(s, sh, sizeof(sh)));
		return -1;
	}
	*bps = t;
	return 0;
}

/* Byte sizes: decimal (kB, MB, GB) and binary (KiB, MiB, GiB) prefixes;
 * "B" alone is bytes; a bare 0 is allowed; "unlimited" is UINT64_MAX. */
static int parse_size_why(const char *s, uint64_t *bytes, char *why, size_t whylen)
{
	static const struct { const char *name; double mul; } units[] = {
		{ "B", 1 }, { "kB", 1e3 }, { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 },
		{ "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
	};
	char unit[32], sh[SHOW_LEN + 8], num[48];
	double v, t;
	size_t i;

	if (s && !strcmp(s, "unlimited")) {
		*bytes = UINT64_MAX;
		return 0;
	}
	if (split_quantity(s, &v, unit, sizeof(unit), "size", "640kB or 1MiB", why, whylen))
		return -1;
	if (!unit[0]) {
		if (v == 0) {
			*bytes = 0;
			return 0;
		}
		snprintf(num, sizeof(num), "%.*s", (int)scan_number(s), s);
		set_err(why, whylen, "'%s' has no unit; write e.g. %skB (units: B, kB, MB, GB, KiB, MiB, GiB)",
			show(s, sh, sizeof(sh)), num);
		return -1;
	}
	for (i = 0; i < UNI_ARRAY_LEN(units); i++)
		if (!strcmp(unit, units[i].name))
			break;
	if (i == UNI_ARRAY_LEN(units)) {
		set_err(why, whylen, "'%s' has an unknown unit '%s'; use B, kB, MB, GB, KiB, MiB or GiB "
			"(bytes), or 'unlimited'", show(s, sh, sizeof(sh)), unit);
		return -1;
	}
	t = v * units[i].mul;
	if (!(t < 9223372036854775807.0)) {
		set_err(why, whylen, "'%s' is too large", show(s, sh, sizeof(sh)));
		return -1;
	}
	*bytes = (uint64_t)(t + 0.5);
	return 0;
}

int uni_parse_size(const char *s, uint64_t *bytes)
{
	return s ? parse_size_why(s, bytes, NULL, 0) : -1;
}

int uni_parse_duration(const char *s, uint64_t *ns)
{
	return s ? parse_duration_why(s, ns, NULL, 0) : -1;
}

int uni_parse_bandwidth(const char *s, double *bps)
{
	return s ? parse_bandwidth_why(s, bps, NULL, 0) : -1;
}

/* ---- typed YAML values ------------------------------------------------- */

/* YAML 1.2 core schema null: only when plain (unquoted). */
static int is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a list";
	default: return "a single value";
	}
}

/* A scalar with a value. Strings may be quoted or not. */
static int get_scalar(struct ctx *x, const yaml_node_t *n, const char *path,
		      const char **out)
{
	if (n->type != YAML_SCALAR_NODE)
		return fail(x, n, path, "expected a single value, got %s", kind(n));
	if (is_null(n))
		return fail(x, n, path, "has no value");
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return fail(x, n, path, "contains a NUL character");
	*out = (const char *)n->data.scalar.value;
	return 0;
}

/* A name from a fixed list, e.g. `model: nic`: *out becomes its index in
 * names (NULL entries skipped); anything else is "unknown WHAT 'x'; use a,
 * b or c", the choices in the table's order. */
static int get_enum(struct ctx *x, const yaml_node_t *n, const char *path,
		    const char *what, const char *const *names, uint32_t count,
		    uint32_t *out)
{
	char sh[SHOW_LEN + 8], use[160];
	uint32_t i, shown = 0, total = 0;
	size_t len = 0;
	const char *s;

	if (get_scalar(x, n, path, &s))
		return -1;
	for (i = 0; i < count; i++) {
		if (!names[i])
			continue;
		total++;
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	}
	use[0] = 0;
	for (i = 0; i < count && len < sizeof(use); i++) {
		if (!names[i])
			continue;
		shown++;
		len += (size_t)snprintf(use + len, sizeof(use) - len, "%s%s",
					shown == 1 ? "" : shown == total ? " or " : ", ",
					names[i]);
	}
	return fail(x, n, path, "unknown %s '%s'; use %s", what,
		    show(s, sh, sizeof(sh)), use);
}

/* Booleans, numbers and ranks must be unquoted: "true" in quotes is a
 * string in YAML, and taking it as a bool would hide a type error. */
static int get_plain(struct ctx *x, const yaml_node_t *n, const char *path,
		     const char *what, const char **out)
{
	char sh[SHOW_LEN + 8];

	if (get_scalar(x, n, path, out))
		return -1;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(x, n, path, "expected %s, got the quoted string '%s'", what,
			    show(*out, sh, sizeof(sh)));
	return 0;
}

static int get_bool(struct ctx *x, const yaml_node_t *n, const char *path, int *out)
{
	char sh[SHOW_LEN + 8];
	const char *v;

	if (get_plain(x, n, path, "true or false", &v))
		return -1;
	if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
		*out = 1;
	else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
		*out = 0;
	else
		return fail(x, n, path, "expected true or false, got '%s'",
			    show(v, sh, sizeof(sh)));
	return 0;
}

/* A slowdown factor: a plain number, finite, greater than zero. */
static int get_slowdown(struct ctx *x, const yaml_node_t *n, const char *path, double *out)
{
	char sh[SHOW_LEN + 8];
	const char *v, *d;
	size_t len;
	double f;

	if (get_plain(x, n, path, "a number", &v))
		return -1;
	d = (v[0] == '-' || v[0] == '+') ? v + 1 : v;
	len = scan_number(d);
	if (!len || d[len])
		return fail(x, n, path, "'%s' is not a number; write e.g. 1.5",
			    show(v, sh, sizeof(sh)));
	if (span_to_double(d, len, &f) || !isfinite(f))
		return fail(x, n, path, "'%s' is too large", show(v, sh, sizeof(sh)));
	if (v[0] == '-' || !(f > 0))
		return fail(x, n, path, "'%s' is not a valid slowdown; it must be greater "
			    "than zero (1.0 = real speed, 2.0 = twice as slow)",
			    show(v, sh, sizeof(sh)));
	*out = f;
	return 0;
}

/* A rank number: plain decimal digits, 0..RANK_MAX. */
static int rank_value(const char *v, int32_t *out)
{
	long r = 0;
	size_t i;

	if (!*v)
		return -1;
	for (i = 0; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		r = r * 10 + (v[i] - '0');
		if (r > RANK_MAX)
			return -1;
	}
	*out = (int32_t)r;
	return 0;
}

static int get_rank(struct ctx *x, const yaml_node_t *n, const char *path, int32_t *out)
{
	char sh[SHOW_LEN + 8];
	const char *v;

	if (get_plain(x, n, path, "a rank number", &v))
		return -1;
	if (rank_value(v, out))
		return fail(x, n, path, "'%s' is not a rank number from 0 to %d",
			    show(v, sh, sizeof(sh)), RANK_MAX);
	return 0;
}

static int get_duration(struct ctx *x, const yaml_node_t *n, const char *path, uint64_t *out)
{
	char why[256];
	const char *v;

	if (get_scalar(x, n, path, &v))
		return -1;
	if (parse_duration_why(v, out, why, sizeof(why)))
		return fail(x, n, path, "%s", why);
	return 0;
}

static int get_size(struct ctx *x, const yaml_node_t *n, const char *path, uint64_t *out)
{
	char why[256];
	const char *v;

	if (get_scalar(x, n, path, &v))
		return -1;
	if (parse_size_why(v, out, why, sizeof(why)))
		return fail(x, n, path, "%s", why);
	return 0;
}

static int get_bandwidth(struct ctx *x, const yaml_node_t *n, const char *path, double *out)
{
	char why[256];
	const char *v;

	if (get_scalar(x, n, path, &v))
		return -1;
	if (parse_bandwidth_why(v, out, why, sizeof(why)))
		return fail(x, n, path, "%s", why);
	return 0;
}

/* A string copied into a fixed field; empty or too long is an error. */
static int get_string(struct ctx *x, const yaml_node_t *n, const char *path,
		      char *out, size_t len)
{
	const char *v;

	if (get_scalar(x, n, path, &v))
		return -1;
	if (!*v)
		return fail(x, n, path, "must not be empty");
	if (strlen(v) >= len)
		return fail(x, n, path, "is too long (at most %zu bytes)", len - 1);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* ---- walking mappings and lists ---------------------------------------- */

/* Called for each key of a mapping with the child's path. Returns 0, -1
 * after fail(), or 1 for an unknown key (the walker reports it). */
typedef int (*pair_fn)(struct ctx *x, const char *path, const char *key,
		       yaml_node_t *knode, yaml_node_t *val, void *arg);
typedef int (*item_fn)(struct ctx *x, const char *path, uint32_t idx,
		       yaml_node_t *item, void *arg);

static void child_path(char *out, size_t len, const char *parent, const char *key)
{
	snprintf(out, len, "%s%s%s", parent, *parent ? "." : "", key);
}

/* Walks a mapping (a plain null counts as empty: "devices:" with everything
 * under it commented out is fine). Checks keys are plain values and not
 * repeated, then calls fn. expected lists the known keys for messages. */
static int walk_map(struct ctx *x, yaml_node_t *n, const char *path,
		    const char *expected, pair_fn fn, void *arg)
{
	yaml_node_pair_t *p, *q;
	char sub[PATH_LEN], sh[SHOW_LEN + 8];

	if (is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE) {
		if (n->type == YAML_SCALAR_NODE)
			return fail(x, n, path, "expected a mapping (keys: %s), got '%s'",
				    expected, show((const char *)n->data.scalar.value,
						   sh, sizeof(sh)));
		return fail(x, n, path, "expected a mapping (keys: %s), got %s",
			    expected, kind(n));
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *key;
		int r;

		if (k->type != YAML_SCALAR_NODE || is_null(k) ||
		    strlen((const char *)k->data.scalar.value) != k->data.scalar.length)
			return fail(x, k, path, "keys must be names, got %s",
				    is_null(k) ? "an empty key" : kind(k));
		key = (const char *)k->data.scalar.value;
		child_path(sub, sizeof(sub), path, key);
		/* libyaml does not reject repeated keys; later ones would
		 * silently win, so they are errors here. Mappings are small:
		 * every one either has a few fixed keys or a bounded count. */
		for (q = n->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = yaml_document_get_node(x->doc, q->key);

			if (!strcmp((const char *)k2->data.scalar.value, key))
				return fail(x, k, sub, "duplicate key (first given on line %u)",
					    node_line(k2));
		}
		r = fn(x, sub, key, k, v, arg);
		if (r < 0)
			return -1;
		if (r > 0)
			return fail(x, k, sub, "unknown key; expected one of: %s", expected);
	}
	return 0;
}

/* Walks a list; a plain null counts as empty. */
static int walk_list(struct ctx *x, yaml_node_t *n, const char *path, item_fn fn, void *arg)
{
	char sub[PATH_LEN];
	yaml_node_item_t *it;
	uint32_t i = 0;

	if (is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(x, n, path, "expected a list, got %s", kind(n));
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, i++) {
		snprintf(sub, sizeof(sub), "%s[%u]", path, i);
		if (fn(x, sub, i, yaml_document_get_node(x->doc, *it), arg))
			return -1;
	}
	return 0;
}

/* ---- the schema -------------------------------------------------------- */

/* network.default */
static int net_default_pair(struct ctx *x, const char *path, const char *key,
			    yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "latency"))
		return get_duration(x, v, path, &x->c->latency_ns);
	if (!strcmp(key, "bandwidth"))
		return get_bandwidth(x, v, path, &x->c->bandwidth_bps);
	return 1;
}

struct link_seen {
	yaml_node_t *from, *to;
};

static int link_pair(struct ctx *x, const char *path, const char *key,
		     yaml_node_t *k, yaml_node_t *v, void *arg)
{
	struct link_seen *seen = arg;
	uint32_t i = x->c->nlinks;
	struct uni_link_cfg *l = &x->c->links[i];

	if (!strcmp(key, "from")) {
		seen->from = v;
		return get_rank(x, v, path, &l->from);
	}
	if (!strcmp(key, "to")) {
		seen->to = v;
		return get_rank(x, v, path, &l->to);
	}
	if (!strcmp(key, "latency")) {
		x->link_set[i] |= LINK_HAS_LATENCY;
		return get_duration(x, v, path, &l->latency_ns);
	}
	if (!strcmp(key, "bandwidth")) {
		x->link_set[i] |= LINK_HAS_BANDWIDTH;
		return get_bandwidth(x, v, path, &l->bandwidth_bps);
	}
	return 1;
}

static int link_item(struct ctx *x, const char *path, uint32_t idx,
		     yaml_node_t *n, void *arg)
{
	struct link_seen seen = { NULL, NULL };
	uint32_t i = x->c->nlinks;
	struct uni_link_cfg *l;

	if (i >= UNI_CFG_MAX_LINKS)
		return fail(x, n, path, "too many links (at most %d)", UNI_CFG_MAX_LINKS);
	l = &x->c->links[i];
	memset(l, 0, sizeof(*l));
	x->link_set[i] = 0;
	x->link_line[i] = node_line(n);
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, path, "expected a mapping (keys: from, to, latency, "
			    "bandwidth), got %s", is_null(n) ? "nothing" : kind(n));
	if (walk_map(x, n, path, "from, to, latency, bandwidth", link_pair, &seen))
		return -1;
	if (!seen.from)
		return fail(x, n, path, "missing 'from' (the sending rank)");
	if (!seen.to)
		return fail(x, n, path, "missing 'to' (the receiving rank)");
	if (l->from == l->to)
		return fail(x, seen.to, path, "'from' and 'to' are both rank %d; a link "
			    "joins two different ranks", (int)l->from);
	/* Two entries for one pair would leave which one applies unclear. */
	for (uint32_t j = 0; j < i; j++)
		if (x->c->links[j].from == l->from && x->c->links[j].to == l->to)
			return fail(x, n, path, "a link from rank %d to rank %d is already "
				    "given on line %u", (int)l->from, (int)l->to,
				    x->link_line[j]);
	x->c->nlinks = i + 1;
	return 0;
}

/* A per-rank override (devices.ranks, network.ranks): the key a rank
 * number not among the n given before it (the j-th at ranks + j * stride
 * bytes, given on lines[j]), room for one more, and a mapping of keys
 * walked with fn(arg). "2" and "02" are different keys to YAML but the
 * same rank. */
static int rank_override(struct ctx *x, const char *path, yaml_node_t *k, yaml_node_t *v,
			 const int32_t *ranks, size_t stride, uint32_t n, const uint32_t *lines,
			 const char *keys, pair_fn fn, void *arg, int32_t *rank)
{
	const char *key = (const char *)k->data.scalar.value;
	char sh[SHOW_LEN + 8];

	if (k->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || rank_value(key, rank))
		return fail(x, k, path, "'%s' is not a rank number from 0 to %d",
			    show(key, sh, sizeof(sh)), RANK_MAX);
	for (uint32_t j = 0; j < n; j++)
		if (*(const int32_t *)((const char *)ranks + j * stride) == *rank)
			return fail(x, k, path, "rank %d is already given on line %u",
				    (int)*rank, lines[j]);
	if (n >= UNI_CFG_MAX_RANK_OVERRIDES)
		return fail(x, k, path, "too many rank overrides (at most %d)",
			    UNI_CFG_MAX_RANK_OVERRIDES);
	if (v->type != YAML_MAPPING_NODE)
		return fail(x, v, path, "expected a mapping (keys: %s), got %s", keys,
			    is_null(v) ? "nothing" : kind(v));
	return walk_map(x, v, path, keys, fn, arg);
}

/* network.ranks.R */
static int nic_entry_pair(struct ctx *x, const char *path, const char *key,
			  yaml_node_t *k, yaml_node_t *v, void *arg)
{
	double *bps = arg; /* uplink, downlink */

	if (!strcmp(key, "uplink"))
		return get_bandwidth(x, v, path, &bps[0]);
	if (!strcmp(key, "downlink"))
		return get_bandwidth(x, v, path, &bps[1]);
	return 1;
}

/* network.ranks: the keys are rank numbers. */
static int net_ranks_pair(struct ctx *x, const char *path, const char *key,
			  yaml_node_t *k, yaml_node_t *v, void *arg)
{
	uint32_t i = x->c->nrank_nics;
	double bps[2] = {0, 0}; /* stay 0 when not given: 0 is never valid */
	int32_t rank;

	if (rank_override(x, path, k, v, &x->c->rank_nics[0].rank, sizeof(x->c->rank_nics[0]), i,
			  x->nic_line, "uplink, downlink", nic_entry_pair, bps, &rank))
		return -1;
	if (bps[0] == 0 && bps[1] == 0)
		return fail(x, v, path, "missing 'uplink' or 'downlink'");
	x->c->rank_nics[i].rank = rank;
	x->c->rank_nics[i].uplink_bps = bps[0];
	x->c->rank_nics[i].downlink_bps = bps[1];
	x->nic_line[i] = node_line(k);
	x->c->nrank_nics = i + 1;
	return 0;
}

/* network.topology.switches[i].ranks[j] */
static int attach_item(struct ctx *x, const char *path, uint32_t idx,
		       yaml_node_t *n, void *arg)
{
	uint16_t sw = (uint16_t)(uintptr_t)arg;
	uint32_t i = x->c->nattach;
	int32_t rank;

	if (get_rank(x, n, path, &rank))
		return -1;
	int extra = -1;
	for (uint32_t j = 0; j < i; j++)
		if (x->c->attach[j].rank == rank) {
			if (x->c->attach[j].sw == sw)
				return fail(x, n, path, "rank %d is already on this switch (line %u)",
					    (int)rank, x->attach_line[j]);
			extra = 0; /* a second cable */
		}
	if (i >= UNI_CFG_MAX_ATTACH)
		return fail(x, n, path, "too many ranks on switches (at most %d)", UNI_CFG_MAX_ATTACH);
	x->c->attach[i].rank = rank;
	x->c->attach[i].sw = sw;
	x->c->attach[i].extra = extra < 0 ? -1 : (int16_t)x->c->nextra++;
	x->attach_line[i] = node_line(n);
	x->attach_node[i] = n;
	x->c->nattach = i + 1;
	return 0;
}

struct switch_seen {
	int name;
	yaml_node_t *ranks;
	char path[PATH_LEN]; /* of ranks */
};

static int switch_pair(struct ctx *x, const char *path, const char *key,
		       yaml_node_t *k, yaml_node_t *v, void *arg)
{
	struct uni_switch_cfg *sw = &x->c->switches[x->c->nswitches];
	struct switch_seen *seen = arg;

	if (!strcmp(key, "name")) {
		char sh[SHOW_LEN + 8];
		const char *s;
		int32_t r;

		seen->name = 1;
		if (get_string(x, v, path, sw->name, sizeof(sw->name)))
			return -1;
		s = sw->name;
		if (!rank_value(s, &r))
			return fail(x, v, path, "'%s' is a number; name a switch with a word "
				    "(e.g. tor0)", show(s, sh, sizeof(sh)));
		for (uint32_t j = 0; j < x->c->nswitches; j++)
			if (!strcmp(x->c->switches[j].name, s))
				return fail(x, v, path, "switch '%s' is already given on line %u",
					    show(s, sh, sizeof(sh)), x->switch_line[j]);
		return 0;
	}
	if (!strcmp(key, "ranks")) {
		/* Walked once the name is known (for messages). */
		seen->ranks = v;
		snprintf(seen->path, sizeof(seen->path), "%s", path);
		return 0;
	}
	if (!strcmp(key, "latency"))
		return get_duration(x, v, path, &sw->latency_ns);
	if (!strcmp(key, "bandwidth"))
		return get_bandwidth(x, v, path, &sw->bandwidth_bps);
	return 1;
}

static int switch_item(struct ctx *x, const char *path, uint32_t idx,
		       yaml_node_t *n, void *arg)
{
	struct switch_seen seen = { 0, NULL, "" };
	uint32_t i = x->c->nswitches;

	if (i >= UNI_CFG_MAX_SWITCHES)
		return fail(x, n, path, "too many switches (at most %d)", UNI_CFG_MAX_SWITCHES);
	memset(&x->c->switches[i], 0, sizeof(x->c->switches[i]));
	x->switch_line[i] = node_line(n);
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, path, "expected a mapping (keys: name, ranks, latency, bandwidth), got %s",
			    is_null(n) ? "nothing" : kind(n));
	if (walk_map(x, n, path, "name, ranks, latency, bandwidth", switch_pair, &seen))
		return -1;
	if (!seen.name)
		return fail(x, n, path, "missing 'name'");
	if (seen.ranks && walk_list(x, seen.ranks, seen.path, attach_item, (void *)(uintptr_t)i))
		return -1;
	x->c->nswitches = i + 1;
	return 0;
}

static int trunk_pair(struct ctx *x, const char *path, const char *key,
		      yaml_node_t *k, yaml_node_t *v, void *arg)
{
	uint32_t i = x->c->ntrunks;
	struct uni_trunk_cfg *t = &x->c->trunks[i];

	if (!strcmp(key, "between")) {
		const char *s;

		if (v->type != YAML_SEQUENCE_NODE ||
		    v->data.sequence.items.top - v->data.sequence.items.start != 2)
			return fail(x, v, path, "expected a list of two switch names, e.g. "
				    "[tor0, spine]");
		for (int e = 0; e < 2; e++) {
			yaml_node_t *m = yaml_document_get_node(x->doc, v->data.sequence.items.start[e]);
			char sub[PATH_LEN];

			snprintf(sub, sizeof(sub), "%s[%d]", path, e);
			if (get_scalar(x, m, sub, &s))
				return -1;
			x->trunk_end[i][e] = m;
		}
		snprintf(x->trunk_path[i], sizeof(x->trunk_path[i]), "%s", path);
		return 0;
	}
	if (!strcmp(key, "latency"))
		return get_duration(x, v, path, &t->latency_ns);
	if (!strcmp(key, "bandwidth")) {
		x->trunk_set[i] |= LINK_HAS_BANDWIDTH;
		return get_bandwidth(x, v, path, &t->bandwidth_bps);
	}
	return 1;
}

static int trunk_item(struct ctx *x, const char *path, uint32_t idx,
		      yaml_node_t *n, void *arg)
{
	uint32_t i = x->c->ntrunks;

	if (i >= UNI_CFG_MAX_TRUNKS)
		return fail(x, n, path, "too many links between switches (at most %d)",
			    UNI_CFG_MAX_TRUNKS);
	memset(&x->c->trunks[i], 0, sizeof(x->c->trunks[i]));
	x->trunk_end[i][0] = x->trunk_end[i][1] = NULL;
	x->trunk_set[i] = 0;
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, path, "expected a mapping (keys: between, bandwidth, latency), got %s",
			    is_null(n) ? "nothing" : kind(n));
	if (walk_map(x, n, path, "between, bandwidth, latency", trunk_pair, NULL))
		return -1;
	if (!x->trunk_end[i][0])
		return fail(x, n, path, "missing 'between' (the two switches it joins)");
	x->c->ntrunks = i + 1;
	return 0;
}

static int topology_pair(struct ctx *x, const char *path, const char *key,
			 yaml_node_t *k, yaml_node_t *v, void *arg)
{
	/* network.topology emptied both lists before its keys are walked. */
	if (!strcmp(key, "switches"))
		return walk_list(x, v, path, switch_item, NULL);
	if (!strcmp(key, "links"))
		return walk_list(x, v, path, trunk_item, NULL);
	return 1;
}

static int switch_index(const struct uni_config *c, const char *name)
{
	for (uint32_t j = 0; j < c->nswitches; j++)
		if (!strcmp(c->switches[j].name, name))
			return (int)j;
	return -1;
}

/* a + b, at most UINT64_MAX - 1 (UINT64_MAX is "no path"): durations are
 * only bounded below 2^63 each, and a route adds several. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - 1 - b ? UINT64_MAX - 1 : a + b;
}

/* Routes between switches: for every source, Dijkstra by latency; ties go
 * to fewer links, then to the link given first. Fills route_in, route_lat
 * (UINT64_MAX: no path) and route_hops. */
static void compute_routes(struct uni_config *c)
{
	uint32_t n = c->nswitches;
	uint64_t dist[UNI_CFG_MAX_SWITCHES];
	uint32_t hops[UNI_CFG_MAX_SWITCHES];
	uint8_t done[UNI_CFG_MAX_SWITCHES];

	for (uint32_t s = 0; s < n; s++) {
		for (uint32_t d = 0; d < n; d++) {
			dist[d] = UINT64_MAX;
			hops[d] = UINT32_MAX;
			done[d] = 0;
			c->route_in[s][d] = UINT16_MAX;
			c->route_lat[s][d] = UINT64_MAX;
			c->route_hops[s][d] = UINT8_MAX;
		}
		dist[s] = 0;
		hops[s] = 0;
		for (;;) {
			int u = -1;
			for (uint32_t d = 0; d < n; d++)
				if (!done[d] && dist[d] != UINT64_MAX &&
				    (u < 0 || dist[d] < dist[u] || (dist[d] == dist[u] && hops[d] < hops[u])))
					u = (int)d;
			if (u < 0)
				break;
			done[u] = 1;
			for (uint32_t t = 0; t < c->ntrunks; t++) {
				const struct uni_trunk_cfg *k = &c->trunks[t];
				int dir;
				uint32_t v;
				if (k->a == (uint32_t)u)
					v = k->b, dir = 0;
				else if (k->b == (uint32_t)u)
					v = k->a, dir = 1;
				else
					continue;
				if (done[v])
					continue;
				uint64_t nd = sat_add(dist[u], k->latency_ns);
				if (nd < dist[v] || (nd == dist[v] && hops[u] + 1 < hops[v])) {
					dist[v] = nd;
					hops[v] = hops[u] + 1;
					c->route_in[s][v] = (uint16_t)(2 * t + dir);
				}
			}
		}
		for (uint32_t d = 0; d < n; d++) {
			c->route_lat[s][d] = dist[d];
			c->route_hops[s][d] = hops[d] < UINT8_MAX ? (uint8_t)hops[d] : UINT8_MAX;
		}
	}
}

/* network.topology once the whole file is read: link ends named, routes. */
static int check_topology(struct ctx *x)
{
	struct uni_config *c = x->c;
	yaml_node_t *at = x->model_node ? x->model_node : x->topology_node ? x->topology_node : x->links_node;
	char sh[SHOW_LEN + 8];

	/* A file without network.model or network.topology leaves what an
	 * earlier one set, already checked. */
	if (!at)
		return 0;
	for (uint32_t i = 0; x->topology_node && i < c->ntrunks; i++) {
		struct uni_trunk_cfg *t = &c->trunks[i];
		int e[2];

		for (int k = 0; k < 2; k++) {
			yaml_node_t *m = x->trunk_end[i][k];
			const char *name = (const char *)m->data.scalar.value;
			char sub[PATH_LEN];

			snprintf(sub, sizeof(sub), "%s[%d]", x->trunk_path[i], k);
			e[k] = switch_index(c, name);
			if (e[k] < 0) {
				int32_t r;
				if (!rank_value(name, &r))
					return fail(x, m, sub, "'%s' is a rank; links join switches, and "
						    "a switch's 'ranks' puts ranks on it", name);
				return fail(x, m, sub, "no switch is named '%s'",
					    show(name, sh, sizeof(sh)));
			}
		}
		if (e[0] == e[1])
			return fail(x, x->trunk_end[i][1], x->trunk_path[i],
				    "both ends are switch '%s'; a link joins two switches",
				    c->switches[e[0]].name);
		t->a = (uint16_t)e[0];
		t->b = (uint16_t)e[1];
		if (!(x->trunk_set[i] & LINK_HAS_BANDWIDTH))
			t->bandwidth_bps = c->bandwidth_bps;
		for (uint32_t j = 0; j < i; j++)
			if ((c->trunks[j].a == t->a && c->trunks[j].b == t->b) ||
			    (c->trunks[j].a == t->b && c->trunks[j].b == t->a))
				return fail(x, x->trunk_end[i][0], x->trunk_path[i],
					    "switches '%s' and '%s' are already joined by link %u "
					    "(a link carries both directions)",
					    c->switches[t->a].name, c->switches[t->b].name, j);
	}
	if (x->topology_node && c->nswitches) {
		compute_routes(c);
		/* Every pair of ranks needs a route: every rank a cable to a
		 * switch joined by links to the first one (where the ranks no
		 * switch names are). A switch beside them (a node's NVLink
		 * switch) needs no links: its ranks reach the others through
		 * their other cables. */
		for (uint32_t i = 0; i < c->nattach; i++) {
			int ok = 0;
			for (uint32_t j = 0; j < c->nattach && !ok; j++)
				ok = c->attach[j].rank == c->attach[i].rank &&
				     c->route_lat[0][c->attach[j].sw] != UINT64_MAX;
			if (!ok)
				return fail(x, x->attach_node[i], "network.topology",
					    "rank %d is on no switch joined to switch '%s' by links: "
					    "no route to the other ranks", (int)c->attach[i].rank,
					    c->switches[0].name);
		}
		for (uint32_t s = 0; s < c->nswitches; s++) {
			int used = c->route_lat[0][s] != UINT64_MAX;
			for (uint32_t j = 0; j < c->nattach && !used; j++)
				used = c->attach[j].sw == s;
			if (!used)
				return fail(x, x->topology_node, "network.topology",
					    "switch '%s' has no ranks and is not joined to switch '%s' by "
					    "any path of links", c->switches[s].name, c->switches[0].name);
		}
	}
	if (c->net_model == UNI_NET_TOPOLOGY) {
		if (!c->nswitches)
			return fail(x, at, "network.model",
				    "the topology model needs network.topology with at least one "
				    "switch (docs/config.md)");
		if (c->nlinks)
			return fail(x, x->links_node ? x->links_node : at, "network.links",
				    "does not apply under the topology model (a pair's latency is "
				    "its route's); give the latencies in network.topology");
	}
	return 0;
}

static int network_pair(struct ctx *x, const char *path, const char *key,
			yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "model")) {
		static const char *const names[] = {
			[UNI_NET_ALPHA_BETA] = "alpha-beta",
			[UNI_NET_NIC] = "nic",
			[UNI_NET_TOPOLOGY] = "topology",
		};
		x->model_node = v;
		return get_enum(x, v, path, "network model", names, UNI_ARRAY_LEN(names),
				&x->c->net_model);
	}
	if (!strcmp(key, "default"))
		return walk_map(x, v, path, "latency, bandwidth", net_default_pair, NULL);
	if (!strcmp(key, "send_buffer"))
		return get_size(x, v, path, &x->c->send_buffer);
	if (!strcmp(key, "links")) {
		/* A list in the file replaces the list already in the config. */
		x->c->nlinks = 0;
		x->links_given = 1;
		x->links_node = v;
		return walk_list(x, v, path, link_item, NULL);
	}
	if (!strcmp(key, "ranks")) {
		x->c->nrank_nics = 0;
		return walk_map(x, v, path, "rank numbers", net_ranks_pair, NULL);
	}
	if (!strcmp(key, "topology")) {
		/* A topology in the file replaces the one already in the
		 * config, switches and links together (links name switches). */
		x->topology_node = v;
		x->c->nswitches = x->c->ntrunks = x->c->nattach = x->c->nextra = 0;
		return walk_map(x, v, path, "switches, links", topology_pair, NULL);
	}
	return 1;
}

/* devices.default */
static int dev_default_pair(struct ctx *x, const char *path, const char *key,
			    yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "slowdown"))
		return get_slowdown(x, v, path, &x->c->slowdown);
	return 1;
}

static int rank_entry_pair(struct ctx *x, const char *path, const char *key,
			   yaml_node_t *k, yaml_node_t *v, void *arg)
{
	double *slowdown = arg;

	if (!strcmp(key, "slowdown"))
		return get_slowdown(x, v, path, slowdown);
	return 1;
}

/* devices.ranks: the keys are rank numbers. */
static int ranks_pair(struct ctx *x, const char *path, const char *key,
		      yaml_node_t *k, yaml_node_t *v, void *arg)
{
	uint32_t i = x->c->nrank_slowdowns;
	double slowdown = 0; /* stays 0 when not given: 0 is never valid */
	int32_t rank;

	if (rank_override(x, path, k, v, &x->c->rank_slowdowns[0].rank, sizeof(x->c->rank_slowdowns[0]), i,
			  x->rank_line, "slowdown", rank_entry_pair, &slowdown, &rank))
		return -1;
	if (slowdown == 0)
		return fail(x, v, path, "missing 'slowdown'");
	x->c->rank_slowdowns[i].rank = rank;
	x->c->rank_slowdowns[i].slowdown = slowdown;
	x->rank_line[i] = node_line(k);
	x->c->nrank_slowdowns = i + 1;
	return 0;
}

struct kernel_seen {
	int match, slowdown;
};

static int kernel_pair(struct ctx *x, const char *path, const char *key,
		       yaml_node_t *k, yaml_node_t *v, void *arg)
{
	struct uni_kernel_cfg *kc = &x->c->kernels[x->c->nkernels];
	struct kernel_seen *seen = arg;

	if (!strcmp(key, "match")) {
		seen->match = 1;
		return get_string(x, v, path, kc->match, sizeof(kc->match));
	}
	if (!strcmp(key, "slowdown")) {
		seen->slowdown = 1;
		return get_slowdown(x, v, path, &kc->slowdown);
	}
	return 1;
}

static int kernel_item(struct ctx *x, const char *path, uint32_t idx,
		       yaml_node_t *n, void *arg)
{
	struct kernel_seen seen = { 0, 0 };
	uint32_t i = x->c->nkernels;

	if (i >= UNI_CFG_MAX_KERNELS)
		return fail(x, n, path, "too many kernel patterns (at most %d)",
			    UNI_CFG_MAX_KERNELS);
	memset(&x->c->kernels[i], 0, sizeof(x->c->kernels[i]));
	if (n->type != YAML_MAPPING_NODE)
		return fail(x, n, path, "expected a mapping (keys: match, slowdown), got %s",
			    is_null(n) ? "nothing" : kind(n));
	if (walk_map(x, n, path, "match, slowdown", kernel_pair, &seen))
		return -1;
	if (!seen.match)
		return fail(x, n, path, "missing 'match' (a glob such as \"*gemm*\")");
	if (!seen.slowdown)
		return fail(x, n, path, "missing 'slowdown'");
	x->c->nkernels = i + 1;
	return 0;
}

static int devices_pair(struct ctx *x, const char *path, const char *key,
			yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "default"))
		return walk_map(x, v, path, "slowdown", dev_default_pair, NULL);
	if (!strcmp(key, "ranks")) {
		x->c->nrank_slowdowns = 0;
		return walk_map(x, v, path, "rank numbers", ranks_pair, NULL);
	}
	if (!strcmp(key, "kernels")) {
		x->c->nkernels = 0;
		return walk_list(x, v, path, kernel_item, NULL);
	}
	return 1;
}

/* {session} is the only placeholder; any other "{...}" is most likely a
 * typo of it, so it is refused rather than kept as literal text. */
static int check_trace_path(struct ctx *x, yaml_node_t *v, const char *path, const char *p)
{
	char sh[SHOW_LEN + 8];
	const char *b;

	for (b = strchr(p, '{'); b; b = strchr(b + 1, '{')) {
		if (!strncmp(b, "{session}", 9)) {
			b += 8;
			continue;
		}
		return fail(x, v, path, "'%s' has an unknown placeholder; only {session} "
			    "is expanded", show(p, sh, sizeof(sh)));
	}
	return 0;
}

static int trace_pair(struct ctx *x, const char *path, const char *key,
		      yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "path")) {
		if (get_string(x, v, path, x->c->trace_path, sizeof(x->c->trace_path)))
			return -1;
		return check_trace_path(x, v, path, x->c->trace_path);
	}
	if (!strcmp(key, "stacks"))
		return get_bool(x, v, path, &x->c->trace_stacks);
	return 1;
}

static int nccl_pair(struct ctx *x, const char *path, const char *key,
		     yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "algorithm")) {
		static const char *const names[] = {
			[UNI_NCCL_ALGO_AUTO] = "auto",
			[UNI_NCCL_ALGO_RING] = "ring",
			[UNI_NCCL_ALGO_TREE] = "tree",
			[UNI_NCCL_ALGO_PAT] = "pat",
		};
		return get_enum(x, v, path, "algorithm", names, UNI_ARRAY_LEN(names),
				&x->c->nccl_algo);
	}
	if (!strcmp(key, "protocol")) {
		static const char *const names[] = {
			[UNI_NCCL_PROTO_AUTO] = "auto",
			[UNI_NCCL_PROTO_LL] = "LL",
			[UNI_NCCL_PROTO_LL128] = "LL128",
			[UNI_NCCL_PROTO_SIMPLE] = "Simple",
		};
		return get_enum(x, v, path, "protocol", names, UNI_ARRAY_LEN(names),
				&x->c->nccl_proto);
	}
	if (!strcmp(key, "ranks_per_node")) {
		char sh[SHOW_LEN + 8];
		const char *s;
		int32_t r;
		if (get_plain(x, v, path, "a number of ranks", &s))
			return -1;
		if (rank_value(s, &r) || r < 1)
			return fail(x, v, path, "'%s' is not a number of ranks from 1 to %d",
				    show(s, sh, sizeof(sh)), RANK_MAX);
		x->c->nccl_ppn = (uint32_t)r;
		return 0;
	}
	if (!strcmp(key, "intra_node")) {
		static const char *const names[] = {
			[UNI_NCCL_INTRA_NVLINK] = "nvlink",
			[UNI_NCCL_INTRA_PCI] = "pci",
		};
		return get_enum(x, v, path, "intra_node", names, UNI_ARRAY_LEN(names),
				&x->c->nccl_intra);
	}
	return 1;
}

static int top_pair(struct ctx *x, const char *path, const char *key,
		    yaml_node_t *k, yaml_node_t *v, void *arg)
{
	if (!strcmp(key, "mode")) {
		/* The names of uni_mode_parse() (common.c), kept here so that
		 * config.c and its unit test build on their own. */
		static const char *const names[] = {
			[UNI_MODE_RECORD] = "record",
			[UNI_MODE_SIMULATE] = "simulate",
			[UNI_MODE_EMULATE] = "emulate",
		};
		return get_enum(x, v, path, "mode", names, UNI_ARRAY_LEN(names),
				&x->c->mode);
	}
	if (!strcmp(key, "strict"))
		return get_bool(x, v, path, &x->c->strict);
	if (!strcmp(key, "network"))
		return walk_map(x, v, path, "model, default, links, send_buffer, ranks, topology", network_pair, NULL);
	if (!strcmp(key, "devices"))
		return walk_map(x, v, path, "default, ranks, kernels", devices_pair, NULL);
	if (!strcmp(key, "trace"))
		return walk_map(x, v, path, "path, stacks", trace_pair, NULL);
	if (!strcmp(key, "nccl"))
		return walk_map(x, v, path, "algorithm, protocol, ranks_per_node, intra_node", nccl_pair, NULL);
	return 1;
}

/* ---- entry points ------------------------------------------------------ */

void uni_config_defaults(struct uni_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = UNI_MODE_SIMULATE;
	c->strict = 0;
	c->net_model = UNI_NET_ALPHA_BETA;
	c->latency_ns = 0;
	c->bandwidth_bps = 1e9;
	c->send_buffer = UNI_DEFAULT_SEND_BUFFER;
	c->slowdown = 1.0;
	snprintf(c->trace_path, sizeof(c->trace_path), "%s", "uni-trace/{session}.unitrace");
	c->trace_stacks = 1;
	c->nccl_ppn = 1;
}

/* 1-based line of a byte offset; reader errors carry only an offset. */
static unsigned offset_line(const char *s, size_t len, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off && i < len; i++)
		line += s[i] == '\n';
	return line;
}

static void syntax_error(const yaml_parser_t *p, const char *yaml, size_t len,
			 const char *name, char *err, size_t errlen)
{
	unsigned line;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		set_err(err, errlen, "%s: out of memory while reading YAML", name);
		return;
	case YAML_READER_ERROR:
		line = offset_line(yaml, len, p->problem_offset);
		break;
	default:
		line = (unsigned)p->problem_mark.line + 1;
		break;
	}
	if (p->context)
		set_err(err, errlen, "%s:%u: YAML syntax error: %s (%s on line %u)", name, line,
			p->problem ? p->problem : "unknown problem", p->context,
			(unsigned)p->context_mark.line + 1);
	else
		set_err(err, errlen, "%s:%u: YAML syntax error: %s", name, line,
			p->problem ? p->problem : "unknown problem");
}

int uni_config_parse(struct uni_config *c, const char *yaml, size_t len,
		     const char *name, char *err, size_t errlen)
{
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	struct ctx *x = NULL;
	yaml_node_t *root;
	int rc = -1;

	if (!name)
		name = "<config>";
	if (err && errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser)) {
		set_err(err, errlen, "%s: out of memory while reading YAML", name);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""),
				     yaml ? len : 0);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&parser, yaml, len, name, err, errlen);
		yaml_parser_delete(&parser);
		return -1;
	}

	/* A config is one document; a second one is refused, not ignored. */
	if (!yaml_parser_load(&parser, &extra)) {
		syntax_error(&parser, yaml, len, name, err, errlen);
		goto out_doc;
	}
	if (yaml_document_get_root_node(&extra)) {
		set_err(err, errlen, "%s:%u: only one YAML document is allowed in a config",
			name, (unsigned)extra.start_mark.line + 1);
		yaml_document_delete(&extra);
		goto out_doc;
	}
	yaml_document_delete(&extra);

	x = calloc(1, sizeof(*x));
	if (!x || !(x->c = malloc(sizeof(*x->c)))) {
		set_err(err, errlen, "%s: out of memory", name);
		goto out_doc;
	}
	*x->c = *c;
	x->name = name;
	x->doc = &doc;
	x->err = err;
	x->errlen = errlen;

	/* No root: an empty file, or only comments. All defaults. */
	root = yaml_document_get_root_node(&doc);
	if (root && !is_null(root)) {
		if (root->type != YAML_MAPPING_NODE) {
			set_err(err, errlen, "%s:%u: the top level must be a mapping of keys "
				"(mode, strict, network, devices, trace), not %s", name,
				node_line(root), kind(root));
			goto out;
		}
		if (walk_map(x, root, "", "mode, strict, network, devices, trace",
			     top_pair, NULL))
			goto out;
	}

	/* Links without latency or bandwidth take network.default's, read
	 * after the whole file so that key order does not matter. */
	if (x->links_given) {
		for (uint32_t i = 0; i < x->c->nlinks; i++) {
			if (!(x->link_set[i] & LINK_HAS_LATENCY))
				x->c->links[i].latency_ns = x->c->latency_ns;
			if (!(x->link_set[i] & LINK_HAS_BANDWIDTH))
				x->c->links[i].bandwidth_bps = x->c->bandwidth_bps;
			x->c->links[i].bandwidth_given = (x->link_set[i] & LINK_HAS_BANDWIDTH) != 0;
		}
	}
	if (check_topology(x))
		goto out;
	*c = *x->c;
	rc = 0;
out:
	free(x->c);
out_doc:
	free(x);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

int uni_config_load(struct uni_config *c, const char *path, char *err, size_t errlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL;
	FILE *f;
	int rc;

	f = fopen(path, "rb");
	if (!f) {
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nb;

			if (cap >= FILE_MAX) {
				set_err(err, errlen, "%s: too large for a config (over %u bytes)",
					path, FILE_MAX);
				goto fail;
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				set_err(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	rc = uni_config_parse(c, buf ? buf : "", len, path, err, errlen);
	free(buf);
	return rc;
fail:
	fclose(f);
	free(buf);
	return -1;
}

/* A rank's NIC in one direction (0 up, 1 down) after network.ranks. */
static double rank_nic(const struct uni_config *c, int rank, int down)
{
	for (uint32_t i = 0; i < c->nrank_nics; i++) {
		double bps = down ? c->rank_nics[i].downlink_bps : c->rank_nics[i].uplink_bps;
		if (c->rank_nics[i].rank == rank && bps > 0)
			return bps;
	}
	return c->bandwidth_bps;
}

double uni_config_uplink(const struct uni_config *c, int rank)
{
	return rank_nic(c, rank, 0);
}

double uni_config_downlink(const struct uni_config *c, int rank)
{
	return rank_nic(c, rank, 1);
}

const char *uni_config_model_name(uint32_t model)
{
	return model == UNI_NET_TOPOLOGY ? "topology" : model == UNI_NET_NIC ? "nic" : "alpha-beta";
}

int uni_config_fluid(const struct uni_config *c)
{
	return c->net_model == UNI_NET_NIC || c->net_model == UNI_NET_TOPOLOGY;
}

int uni_config_switch_of(const struct uni_config *c, int rank)
{
	for (uint32_t i = 0; i < c->nattach; i++)
		if (c->attach[i].rank == rank)
			return c->attach[i].sw;
	return 0;
}

/* A rank's cables: (switch, extra index or -1) pairs, the primary first;
 * a rank no switch names has one, to switch 0. Returns how many. */
static int cables(const struct uni_config *c, int rank, int *sw, int *extra, int max)
{
	int n = 0;
	for (uint32_t i = 0; i < c->nattach && n < max; i++)
		if (c->attach[i].rank == rank) {
			sw[n] = c->attach[i].sw;
			extra[n++] = c->attach[i].extra;
		}
	if (!n) {
		sw[0] = 0;
		extra[0] = -1;
		n = 1;
	}
	return n;
}

#define MAX_CABLES UNI_CFG_MAX_SWITCHES

int uni_config_route(const struct uni_config *c, int a, int b, uint32_t nranks,
		     uint32_t *links, uint64_t *latency_ns)
{
	uint32_t tmp[UNI_CFG_MAX_ROUTE];
	int n = 0, k = 0;

	if (c->net_model != UNI_NET_TOPOLOGY || !c->nswitches) {
		double bps;
		uni_config_link(c, a, b, latency_ns, &bps);
		links[0] = (uint32_t)a;
		links[1] = nranks + (uint32_t)b;
		return 2;
	}
	int swa[MAX_CABLES], exa[MAX_CABLES], swb[MAX_CABLES], exb[MAX_CABLES];
	int na = cables(c, a, swa, exa, MAX_CABLES), nb = cables(c, b, swb, exb, MAX_CABLES);
	int ba = 0, bb = 0;
	uint64_t best = UINT64_MAX;
	unsigned best_hops = UINT32_MAX;
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++) {
			uint64_t d = c->route_lat[swa[i]][swb[j]];
			if (d == UINT64_MAX)
				continue;
			d = sat_add(sat_add(d, c->switches[swa[i]].latency_ns), c->switches[swb[j]].latency_ns);
			unsigned h = c->route_hops[swa[i]][swb[j]];
			if (d < best || (d == best && h < best_hops)) {
				best = d;
				best_hops = h;
				ba = i;
				bb = j;
			}
		}
	int sa = swa[ba], sb = swb[bb];
	uint64_t lat = sat_add(c->switches[sa].latency_ns, c->switches[sb].latency_ns);
	/* Walked back from b's switch, then reversed. */
	for (int s = sb; s != sa && k < UNI_CFG_MAX_SWITCHES;) {
		uint16_t in = c->route_in[sa][s];
		if (in == UINT16_MAX)
			break; /* unreachable: refused when the file was read */
		const struct uni_trunk_cfg *t = &c->trunks[in / 2];
		tmp[k++] = in;
		lat = sat_add(lat, t->latency_ns);
		s = (in & 1) ? t->b : t->a;
	}
	uint32_t xbase = 2 * nranks + 2 * c->ntrunks;
	links[n++] = exa[ba] < 0 ? (uint32_t)a : xbase + 2 * (uint32_t)exa[ba];
	while (k > 0)
		links[n++] = 2 * nranks + tmp[--k];
	links[n++] = exb[bb] < 0 ? nranks + (uint32_t)b : xbase + 2 * (uint32_t)exb[bb] + 1;
	*latency_ns = lat;
	return n;
}

uint32_t uni_config_route_links(const struct uni_config *c, uint32_t nranks)
{
	if (c->net_model != UNI_NET_TOPOLOGY)
		return 2 * nranks;
	return 2 * nranks + 2 * c->ntrunks + 2 * c->nextra;
}

int uni_config_cable(const struct uni_config *c, uint32_t link, uint32_t nranks, int *rank, int *sw, int *up)
{
	uint32_t xbase = 2 * nranks + 2 * c->ntrunks;
	if (link < 2 * nranks) {
		*rank = (int)(link % nranks);
		*up = link < nranks;
		*sw = c->net_model == UNI_NET_TOPOLOGY ? uni_config_switch_of(c, *rank) : -1;
		return 1;
	}
	if (c->net_model != UNI_NET_TOPOLOGY || link < xbase)
		return 0;
	uint32_t k = (link - xbase) / 2;
	for (uint32_t i = 0; i < c->nattach; i++)
		if (c->attach[i].extra == (int)k) {
			*rank = c->attach[i].rank;
			*sw = c->attach[i].sw;
			*up = !((link - xbase) & 1);
			return 1;
		}
	return 0;
}

double uni_config_route_capacity(const struct uni_config *c, uint32_t link, uint32_t nranks)
{
	int rank, sw, up;
	if (uni_config_cable(c, link, nranks, &rank, &sw, &up)) {
		if (sw >= 0 && c->switches[sw].bandwidth_bps > 0)
			return c->switches[sw].bandwidth_bps;
		return up ? uni_config_uplink(c, rank) : uni_config_downlink(c, rank);
	}
	if (c->net_model == UNI_NET_TOPOLOGY && link >= 2 * nranks && link < 2 * nranks + 2 * c->ntrunks)
		return c->trunks[(link - 2 * nranks) / 2].bandwidth_bps;
	return 0;
}

void uni_config_link(const struct uni_config *c, int a, int b, uint64_t *latency_ns, double *bps)
{
	uint32_t i;

	if (c->net_model == UNI_NET_TOPOLOGY && c->nswitches) {
		uint32_t links[UNI_CFG_MAX_ROUTE];
		int n = uni_config_route(c, a, b, RANK_MAX + 1, links, latency_ns);
		*bps = INFINITY;
		for (int j = 0; j < n; j++) {
			double cap = uni_config_route_capacity(c, links[j], RANK_MAX + 1);
			if (cap < *bps)
				*bps = cap;
		}
		return;
	}
	for (i = 0; i < c->nlinks; i++) {
		const struct uni_link_cfg *l = &c->links[i];
		if ((l->from < 0 || l->from == a) && (l->to < 0 || l->to == b)) {
			*latency_ns = l->latency_ns;
			*bps = l->bandwidth_bps;
			if (l->bandwidth_given)
				return;
			break; /* its latency, the NICs' bandwidth */
		}
	}
	double up = uni_config_uplink(c, a), down = uni_config_downlink(c, b);
	if (i == c->nlinks) {
		*latency_ns = c->latency_ns;
		*bps = c->bandwidth_bps;
	}
	if (up < *bps)
		*bps = up;
	if (down < *bps)
		*bps = down;
}

double uni_config_rank_slowdown(const struct uni_config *c, int rank)
{
	for (uint32_t i = 0; i < c->nrank_slowdowns; i++)
		if (c->rank_slowdowns[i].rank == rank)
			return c->rank_slowdowns[i].slowdown;
	return c->slowdown;
}

void uni_config_trace_path(const struct uni_config *c, const char *session,
			   char *out, size_t len)
{
	const char *p = c->trace_path;
	size_t o = 0, slen;

	if (!out || !len)
		return;
	if (!session)
		session = "";
	slen = strlen(session);
	/* Copies until out is full; the result is cut, never unterminated. */
	while (*p && o + 1 < len) {
		if (!strncmp(p, "{session}", 9)) {
			size_t n = slen < len - 1 - o ? slen : len - 1 - o;

			memcpy(out + o, session, n);
			o += n;
			p += 9;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
}
