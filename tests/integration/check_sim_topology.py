#!/usr/bin/env python3
"""Checks a sim_cross.py trace under the topology model (test
sim-topology): every data message's last byte arrives when an independent
max-min fluid computation says, from the messages' own stamps in the trace
and the route of each pair (the links it crosses, their capacities, the
route's latency), within 0.5%; and near the closed forms of the schedule
(all three starting together), within 3%.

    check_sim_topology.py DUMP.jsonl

The network (as tests/integration/test_sim_topology.sh configures it):
ranks 0, 1 on switch tor0, ranks 2, 3 on tor1, 100 us cables, NICs 1
Gbit/s, rank 3's downlink 400 Mbit/s, tor0-tor1 100 Mbit/s, 1 ms."""
import json
import sys

G = 1e9
CAP = {("up", r): G for r in range(4)}
CAP.update({("down", r): G for r in range(4)})
CAP[("down", 3)] = 400e6
CAP[("trunk", 0, 1)] = CAP[("trunk", 1, 0)] = 100e6
SW = {0: 0, 1: 0, 2: 1, 3: 1}


def route(a, b):
    links = [("up", a)]
    lat = 200e3
    if SW[a] != SW[b]:
        links.append(("trunk", SW[a], SW[b]))
        lat += 1e6
    links.append(("down", b))
    return links, lat


def fluid(flows):
    """flows: {key: (start_ns, bytes, links)} -> {key: time the last byte left}."""
    t = min(s for s, _, _ in flows.values())
    left = {k: float(b) for k, (_, b, _) in flows.items()}
    end = {}
    while left:
        active = [k for k in left if flows[k][0] <= t]
        nxt = min((flows[k][0] for k in left if flows[k][0] > t), default=float("inf"))
        if not active:
            t = nxt
            continue
        rate, frozen = {}, set()
        cap = {l: c / 8e9 for l, c in CAP.items()}  # bytes per ns
        while len(frozen) < len(active):
            share = {}
            for l in cap:
                n = sum(1 for k in active if k not in frozen and l in flows[k][2])
                if n:
                    share[l] = cap[l] / n
            best = min(share.values())
            for k in active:
                if k not in frozen and min(share[l] for l in flows[k][2]) <= best * (1 + 1e-12):
                    rate[k] = best
                    frozen.add(k)
                    for l in flows[k][2]:
                        cap[l] -= best
        dt = min(min(left[k] / rate[k] for k in active), nxt - t)
        for k in active:
            left[k] -= rate[k] * dt
            if left[k] <= 1e-6:
                end[k] = t + dt
                del left[k]
        t += dt
    return end


data = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] == "send" and r["len"] > 48 * 1024:
        k = (r["rank"], r["peer"])
        s = data.setdefault(k, {"t0": r["t0"], "t1": r["t1"], "bytes": 0})
        s["t0"] = min(s["t0"], r["t0"])
        s["t1"] = max(s["t1"], r["t1"])
        s["bytes"] += r["len"]
want_pairs = {(0, 2): 8e6, (1, 3): 16e6, (2, 3): 16e6}
assert set(data) == set(want_pairs), "data messages %s, want %s" % (sorted(data), sorted(want_pairs))
flows = {}
for k, s in data.items():
    assert abs(s["bytes"] - want_pairs[k]) < 1024, "%s: %d bytes" % (k, s["bytes"])
    links, lat = route(*k)
    flows[k] = (s["t0"], s["bytes"], links)
end = fluid(flows)
start = min(s["t0"] for s in data.values())
# Closed forms, all starting together: 0->2 and 1->3 share the 100 Mbit/s
# link (50 each); 2->3 gets what rank 3's 400 Mbit/s downlink leaves (350);
# 0->2 ends at 8 MB / 50 Mbit/s, then 1->3 has the link to itself.
closed = {(2, 3): 16e6 * 8 / 350e6 * 1e9 + 200e3,
          (0, 2): 8e6 * 8 / 50e6 * 1e9 + 1.2e6,
          (1, 3): (8e6 * 8 / 50e6 + 8e6 * 8 / 100e6) * 1e9 + 1.2e6}
bad = 0
for k in sorted(data):
    s = data[k]
    want = end[k] + route(*k)[1]
    took, cf = (s["t1"] - start) / 1e6, closed[k] / 1e6
    print("%d -> %d: %.0f bytes, stamp +%.3f ms, last byte at +%.3f ms; fluid model from the stamps +%.3f ms, "
          "closed form +%.3f ms" % (k[0], k[1], s["bytes"], (s["t0"] - start) / 1e6, took, (want - start) / 1e6, cf))
    if abs(s["t1"] - want) > 0.005 * (want - s["t0"]):
        print("FAIL: more than 0.5%% off the fluid model"); bad = 1
    if abs(took - cf) > 0.03 * cf:
        print("FAIL: more than 3%% off the closed form"); bad = 1
sys.exit(bad)
