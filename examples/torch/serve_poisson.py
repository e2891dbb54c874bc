#!/usr/bin/env python3
"""Serving requests that arrive as a Poisson process, with continuous
batching, on the tensor-parallel model of tp_infer.py (same random
weights).

A plain torch.distributed program (Gloo backend, env:// rendezvous) that
runs unmodified under torchrun, tests/integration/launch.py or unirun.

--requests prompts arrive at exponentially distributed intervals of mean
1 / --rate seconds (a fixed seed: the same arrivals every run). The ranks
run decoding iterations in lockstep: before each one, rank 0 admits every
request that has arrived by then (its clock) into the running batch, up
to --max-batch, and broadcasts the batch; the iteration computes the next
token of every request in the batch at once (sequences right-padded: the
attention is causal, so the padding changes no real position); a request
that has its --tokens leaves the batch, and the next iteration may admit
new ones (iteration-level, "continuous" batching). With nothing to do,
rank 0 sleeps until the next arrival. Every clock read and sleep is the
program's own (time.perf_counter, time.sleep): under uniference's
simulate mode they are virtual, so an hour of simulated serving does not
take an hour, and the delays printed are the prediction for the
configured devices and network.

Rank 0 prints:

  served: N requests, mean batch M
  delay: mean X ms, p50 Y ms, p90 Z ms   (arrival to last token)
  throughput: T tokens/s over S s
  idle: K sleeps until the next arrival; last arrival at A s
  prediction: <tokens of request 0>

--check decodes every request alone with the unsharded model on rank 0
and compares ("check: ok").
"""

import argparse
import math
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

import tp_infer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=16, help="requests to serve (default 16)")
    p.add_argument("--rate", type=float, default=10.0, help="mean arrivals per second (default 10)")
    p.add_argument("--tokens", type=int, default=4, help="new tokens per request (default 4)")
    p.add_argument("--max-batch", type=int, default=8, help="requests per iteration at most (default 8)")
    p.add_argument("--seed", type=int, default=7, help="seed of the arrivals (default 7)")
    tp_infer.add_model_args(p)
    p.add_argument("--check", action="store_true",
                   help="also decode every request with the unsharded model on rank 0 and compare")
    args = p.parse_args(argv)
    tp_infer.check_model_args(p, args, (
        min(args.requests, args.tokens, args.max_batch, args.prompt_len) < 1 or args.rate <= 0,
        "--requests, --tokens, --max-batch, --prompt-len and --rate must be positive"))
    return args


class BatchedTP(tp_infer.Model):
    """tp_infer's sharded model over a batch of right-padded sequences."""

    def _attention(self, x, L):
        B, T, _ = x.shape
        h, hd = self.w["local_heads"], self.head_dim
        q = F.linear(x, L["wq"], L["bq"]).view(B, T, h, hd).transpose(1, 2)
        k = F.linear(x, L["wk"], L["bk"]).view(B, T, h, hd).transpose(1, 2)
        v = F.linear(x, L["wv"], L["bv"]).view(B, T, h, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        ctx = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, h * hd)
        return self._all_reduce(F.linear(ctx, L["wo"])) + L["bo"]

    def next_tokens(self, seqs):
        w = self.w
        d = w["tok_emb"].shape[1]
        lens = [len(s) for s in seqs]
        T = max(lens)
        ids = torch.zeros(len(seqs), T, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        x = w["tok_emb"][ids] + w["pos_emb"][:T]
        for L in w["layers"]:
            x = x + self._attention(F.layer_norm(x, (d,), L["ln1_w"], L["ln1_b"]), L)
            x = x + self._mlp(F.layer_norm(x, (d,), L["ln2_w"], L["ln2_b"]), L)
        last = torch.stack([x[i, n - 1] for i, n in enumerate(lens)])
        logits = self._all_gather_last(F.linear(F.layer_norm(last, (d,), w["lnf_w"], w["lnf_b"]),
                                                w["lm_head"]))
        return [int(t) for t in torch.argmax(logits, dim=-1)]


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    d, H, V = args.d_model, args.heads, args.vocab
    if H % world or V % world or (4 * d) % world:
        if rank == 0:
            print(f"error: world size {world} must divide heads ({H}), vocab ({V}) "
                  f"and 4*d_model ({4 * d})", file=sys.stderr)
        dist.destroy_process_group()
        return 2
    full = tp_infer.build_full_weights(V, d, args.layers, args.max_seq)
    model = BatchedTP(tp_infer.shard_weights(full, rank, world, H), d // H, world, distributed=True)
    if not (args.check and rank == 0):
        del full
    n = args.requests
    g = torch.Generator().manual_seed(args.seed)
    arrivals = torch.cumsum(torch.empty(n).exponential_(args.rate, generator=g), 0).tolist()
    prompts = [torch.randint(0, V, (args.prompt_len,), generator=torch.Generator().manual_seed(1234 + i)).tolist()
               for i in range(n)]
    seqs = [list(p) for p in prompts]
    done_at = [None] * n
    waiting, batch, served, iters, batch_sum, idle = list(range(n)), [], 0, 0, 0, 0

    dist.barrier()
    t0 = time.perf_counter()
    with torch.no_grad():
        while True:
            msg = torch.full((args.max_batch + 1,), -1, dtype=torch.long)
            if rank == 0:
                now = time.perf_counter() - t0
                if not batch and waiting and arrivals[waiting[0]] > now:
                    time.sleep(arrivals[waiting[0]] - now)  # idle until the next arrival
                    idle += 1
                    now = time.perf_counter() - t0
                while waiting and len(batch) < args.max_batch and arrivals[waiting[0]] <= now:
                    batch.append(waiting.pop(0))
                msg[0] = 1 if batch else 0
                msg[1:1 + len(batch)] = torch.tensor(batch, dtype=torch.long)
            dist.broadcast(msg, 0)
            if msg[0] == 0:
                break
            batch = [int(r) for r in msg[1:] if r >= 0]
            toks = model.next_tokens([seqs[r] for r in batch])
            iters += 1
            batch_sum += len(batch)
            for r, t in zip(batch, toks):
                seqs[r].append(t)
            finished = [r for r in batch if len(seqs[r]) - args.prompt_len == args.tokens]
            if finished:
                now = time.perf_counter() - t0
                for r in finished:
                    done_at[r] = now
                served += len(finished)
            batch = [r for r in batch if r not in finished]
    elapsed = time.perf_counter() - t0

    status = 0
    if rank == 0:
        delays = sorted((done_at[r] - arrivals[r]) * 1e3 for r in range(n))
        pct = lambda q: delays[min(n - 1, int(q * n))]
        print(f"served: {served} requests, mean batch {batch_sum / max(iters, 1):.2f}", flush=True)
        print(f"delay: mean {sum(delays) / n:.1f} ms, p50 {pct(0.5):.1f} ms, p90 {pct(0.9):.1f} ms", flush=True)
        print(f"throughput: {n * args.tokens / elapsed:.2f} tokens/s over {elapsed:.3f} s", flush=True)
        print(f"idle: {idle} sleeps until the next arrival; last arrival at {arrivals[-1]:.3f} s", flush=True)
        print("prediction: " + " ".join(str(t) for t in seqs[0][args.prompt_len:]), flush=True)
        if args.check:
            ref = tp_infer.Model(tp_infer.shard_weights(full, 0, 1, H), d // H, 1, distributed=False)
            refs = [ref.generate(torch.tensor(p), args.tokens)[0] for p in prompts]
            got = [s[args.prompt_len:] for s in seqs]
            if refs == got:
                print("check: ok", flush=True)
            else:
                print(f"check: FAILED\n  served: {got}\n  ref:    {refs}", file=sys.stderr, flush=True)
                status = 1
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
