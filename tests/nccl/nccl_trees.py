"""NCCL's double binary tree (src/graph/trees.cc, ncclGetBtree and
ncclGetDtree), as the simulated NCCL builds it (shim/nccl.c): tree 0 is
rooted at rank 0 and a rank's level is its lowest set bit; tree 1 is tree
0 mirrored (n - 1 - r) when n is even and shifted by one rank when n is
odd. Imported by test_nccl.sh's closed forms, with the trees over nodes
and the reader of the nccl_op records' choices below."""
import struct

REC = struct.Struct('<HHiiiIIQQQQQ')


def recorded(path):
    """Bytes -> the set of "algo/proto" of a trace's nccl_op records."""
    d = open(path, 'rb').read()
    hs = struct.unpack_from('<I', d, 12)[0]
    out = {}
    for o in range(hs, len(d) - 63, 64):
        r = REC.unpack_from(d, o)
        if r[0] == 20:
            fl = r[1]
            out.setdefault(r[10], set()).add(("-", "ring", "tree")[(fl >> 4) & 7 if (fl >> 4) & 7 < 3 else 0] + "/" +
                                              ("-", "LL", "LL128", "Simple")[(fl >> 13) & 3])
    return out


def btree_full(n, r):
    """(up, d0, d1, ct) of rank r in NCCL's btree (ncclGetBtree)."""
    bit = 1
    while bit < n and not (bit & r):
        bit <<= 1
    if r == 0:
        return -1, -1, (bit >> 1) if n > 1 else -1, 0
    u = (r ^ bit) | (bit << 1)
    if u >= n:
        u = r ^ bit
    low = bit >> 1
    d0 = -1 if low == 0 else r - low
    d1 = -1 if low == 0 else r + low
    while d1 >= n:
        d1 = -1 if low == 0 else r + low
        low >>= 1
    return u, d0, d1, 0 if r < u else 1


def dtree_full(n, r, t):
    if t == 0:
        return btree_full(n, r)
    if n % 2:
        u, a, b, ct = btree_full(n, (r - 1) % n)
        f = lambda x: -1 if x < 0 else (x + 1) % n
    else:
        u, a, b, ct = btree_full(n, n - 1 - r)
        f = lambda x: -1 if x < 0 else n - 1 - x
    return f(u), f(a), f(b), ct


def parent(n, r, t):
    """The parent of rank r in tree t (0 or 1) of n ranks, -1 at the root."""
    return dtree_full(n, r, t)[0]


def depth(n, r, t):
    d = 0
    while (r := parent(n, r, t)) >= 0:
        d += 1
    return d


# Nodes (docs/nccl.md "Nodes"): nccl.ranks_per_node = ppn consecutive
# ranks share a node; NCCL's trees go over the nodes, a chain inside each
# (connectTrees with the balanced pattern: place 0 links to the parent
# node and to the second child node, place 1 to the first child node).

def node_parent(n, ppn, r, t):
    """The parent of rank r in tree t over nodes of ppn ranks, -1 at the root."""
    nn = -(-n // ppn)
    size = lambda x: min(ppn, n - x * ppn)
    k, i = r // ppn, r % ppn
    if i > 0:
        return r - 1
    u, _, _, ct = dtree_full(nn, k, t)
    if u < 0:
        return -1
    return u * ppn + (1 if ct == 0 and size(u) > 1 else 0)


def node_tree_end(n, ppn, r, t, k, tau, w):
    """Rank r's end in tree t (one half of an AllReduce in k chunks of
    tau seconds each on the wire): w(x, y) is the time of a hop from x to
    y besides tau (network latency + NCCL's hop latency)."""
    def up_len(x):
        s = 0
        while (p := node_parent(n, ppn, x, t)) >= 0:
            s += tau + w(x, p)
            x = p
        return s
    return (k - 1) * tau + max(up_len(x) for x in range(n)) + up_len(r)


def ring_end(n, r, steps, step_s, w):
    """Rank r's end of a ring of `steps` steps of step_s seconds on the
    wire each, w(x, y) the rest of a hop from x to y: the hops walked back
    from r."""
    s, x = 0, r
    for _ in range(steps):
        y = (x - 1) % n
        s += step_s + w(y, x)
        x = y
    return s
