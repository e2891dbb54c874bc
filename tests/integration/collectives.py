#!/usr/bin/env python3
"""Fixed sequence of torch.distributed (Gloo) operations for integration tests.

Per iteration, in this order:
  all_reduce (sum, float32) of 1, 1000 and 300000 elements
  all_gather of 1000 elements
  broadcast of 1000 elements from root 1 (root 0 when the world is 1)
  send/recv ring with isend/irecv: rank r -> (r+1)%n, receives from (r-1)%n
  blocking send/recv between ranks 0 and 1 (0: send then recv, 1: recv then send)
  barrier
(reduce_scatter and all_to_all are not supported by Gloo in torch 1.13.)

Inputs are random non-integer floats from torch.Generator().manual_seed(1000+rank),
re-seeded at the start of every iteration, so every iteration computes the
same values and the saved results do not depend on --iters.

Every rank saves the results of the last iteration to DIR/rank<R>.pt
(torch.save of a dict of tensors) and prints "rank R ok".
"""

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

ALL_REDUCE_SIZES = (1, 1000, 300000)
N = 1000          # all_gather / broadcast elements
RING_N = 4099     # odd size on purpose
P2P_N = 777


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, metavar="DIR", help="write DIR/rank<R>.pt")
    p.add_argument("--iters", type=int, default=1, help="repeat the sequence K times (default 1)")
    p.add_argument("--sleep-after-first", type=float, default=0.0, metavar="S",
                   help="sleep S seconds after the first iteration")
    args = p.parse_args(argv)
    if args.iters < 1:
        p.error("--iters must be >= 1")
    return args


def rand(g, n):
    return torch.randn(n, generator=g, dtype=torch.float32)


def one_iteration(rank, world):
    g = torch.Generator().manual_seed(1000 + rank)
    res = {}

    for n in ALL_REDUCE_SIZES:
        x = rand(g, n)
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        res[f"all_reduce_{n}"] = x

    x = rand(g, N)
    parts = [torch.empty(N, dtype=torch.float32) for _ in range(world)]
    dist.all_gather(parts, x)
    res["all_gather"] = torch.stack(parts)

    root = 1 if world > 1 else 0
    x = rand(g, N)
    dist.broadcast(x, src=root)
    res["broadcast"] = x

    x = rand(g, RING_N)
    if world > 1:
        buf = torch.empty(RING_N, dtype=torch.float32)
        reqs = [dist.isend(x, dst=(rank + 1) % world),
                dist.irecv(buf, src=(rank - 1) % world)]
        for r in reqs:
            r.wait()
        res["ring_recv"] = buf

    x = rand(g, P2P_N)
    if world > 1 and rank in (0, 1):
        buf = torch.empty(P2P_N, dtype=torch.float32)
        if rank == 0:
            dist.send(x, dst=1)
            dist.recv(buf, src=1)
        else:
            dist.recv(buf, src=0)
            dist.send(x, dst=0)
        res["p2p_recv"] = buf

    dist.barrier()
    return res


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()

    res = None
    for it in range(args.iters):
        res = one_iteration(rank, world)
        if it == 0 and args.sleep_after_first > 0:
            time.sleep(args.sleep_after_first)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"rank{rank}.pt")
    tmp = path + ".tmp"
    torch.save(res, tmp)
    os.replace(tmp, path)
    print(f"rank {rank} ok", flush=True)

    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
