"""NCCL's double binary tree (src/graph/trees.cc, ncclGetBtree and
ncclGetDtree), as the simulated NCCL builds it (shim/nccl.c): tree 0 is
rooted at rank 0 and a rank's level is its lowest set bit; tree 1 is tree
0 mirrored (n - 1 - r) when n is even and shifted by one rank when n is
odd. Imported by test_nccl.sh's closed forms."""


def btree(n, r):
    bit = 1
    while bit < n and not (bit & r):
        bit <<= 1
    if r == 0:
        return -1
    u = (r ^ bit) | (bit << 1)
    return u if u < n else r ^ bit


def parent(n, r, t):
    """The parent of rank r in tree t (0 or 1) of n ranks, -1 at the root."""
    if t == 0:
        return btree(n, r)
    if n % 2:
        u = btree(n, (r - 1) % n)
        return -1 if u < 0 else (u + 1) % n
    u = btree(n, n - 1 - r)
    return -1 if u < 0 else n - 1 - u


def depth(n, r, t):
    d = 0
    while (r := parent(n, r, t)) >= 0:
        d += 1
    return d
