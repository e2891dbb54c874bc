#!/usr/bin/env python3
"""Position-wise parallel greedy decoding (Voltage), and with --overlap its
communication-aware variant (Kilovolts, the seed paper's case study), of
the small transformer of tp_infer.py (same random weights and prompt).

A plain torch.distributed program (Gloo backend, env:// rendezvous) that
runs unmodified under torchrun, tests/integration/launch.py or unirun.

Every rank holds the whole model. The positions of the sequence are split
into WORLD_SIZE contiguous parts; in every layer a rank computes the
layer's output for its own positions only (queries of its positions,
keys and values of the positions up to its last one: attention is
causal), and one dist.all_gather assembles the layer's output for all
positions, the next layer's input. After the last layer every rank has
the last position and picks the next token itself.

Voltage waits for the all_gather before it starts the next layer.
Kilovolts (--overlap) issues it asynchronously and, while the other parts
travel, already computes what only its own part needs: the layernorm and
the query, key and value projections of its own positions; then it waits
and projects the other positions' keys and values. The transfer hides
that compute: about max(compute, transfer) instead of their sum.

Rank 0 prints:

  prediction: <space-separated token ids>
  time per token: X ms

Under uniference's simulate mode the clock is the simulated one (the
prediction for the configured devices and network). --check runs the
unsharded model on rank 0 and compares ("check: ok").
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
    p.add_argument("--overlap", action="store_true",
                   help="Kilovolts: overlap each all_gather with the own part's projections")
    p.add_argument("--tokens", type=int, default=8, help="new tokens to generate (default 8)")
    tp_infer.add_model_args(p)
    p.add_argument("--check", action="store_true",
                   help="also run the unsharded model on rank 0 and compare predictions")
    args = p.parse_args(argv)
    tp_infer.check_model_args(p, args, (
        args.prompt_len < 1 or args.tokens < 1,
        "--prompt-len and --tokens must be >= 1"))
    return args


class PositionWise:
    def __init__(self, w, heads, rank, world, overlap):
        self.w, self.heads, self.rank, self.world, self.overlap = w, heads, rank, world, overlap
        self.d = w["tok_emb"].shape[1]

    def _ln(self, x, g, b):
        return F.layer_norm(x, (self.d,), g, b)

    def _gather(self, own, T, chunk):
        """Starts the all_gather of the own rows (padded to chunk rows);
        returns (work or None, parts)."""
        pad = torch.zeros(chunk, self.d)
        pad[:own.shape[0]] = own
        parts = [torch.empty(chunk, self.d) for _ in range(self.world)]
        work = dist.all_gather(parts, pad, async_op=self.overlap)
        return work, parts

    def _attend(self, q, k, v, lo, L):
        """Queries of positions lo.. (q: [t, d]) over keys 0..lo+t-1."""
        H, hd = self.heads, self.d // self.heads
        t, n = q.shape[0], k.shape[0]
        q = q.view(t, H, hd).transpose(0, 1)
        k = k.view(n, H, hd).transpose(0, 1)
        v = v.view(n, H, hd).transpose(0, 1)
        scores = q @ k.transpose(1, 2) / math.sqrt(hd)
        pos_q = torch.arange(lo, lo + t).unsqueeze(1)
        scores = scores.masked_fill(torch.arange(n).unsqueeze(0) > pos_q, float("-inf"))
        ctx = (scores.softmax(dim=-1) @ v).transpose(0, 1).reshape(t, self.d)
        return F.linear(ctx, L["wo"], L["bo"])

    def next_token(self, ids):
        w, T = self.w, ids.shape[0]
        chunk = -(-T // self.world)
        lo, hi = min(T, self.rank * chunk), min(T, (self.rank + 1) * chunk)
        x_full = w["tok_emb"][ids] + w["pos_emb"][:T]   # every rank: the first layer's input
        x_own = x_full[lo:hi]
        work = parts = None
        for i, L in enumerate(w["layers"]):
            if i == 0 or not self.overlap:
                # Voltage: the whole input is here (the gather was waited for).
                h = self._ln(x_full[:hi], L["ln1_w"], L["ln1_b"])
                q = F.linear(h[lo:hi], L["wq"], L["bq"])
                k = F.linear(h, L["wk"], L["bk"])
                v = F.linear(h, L["wv"], L["bv"])
            else:
                # Kilovolts: the own rows' projections while the others travel.
                h_own = self._ln(x_own, L["ln1_w"], L["ln1_b"])
                q = F.linear(h_own, L["wq"], L["bq"])
                k_own = F.linear(h_own, L["wk"], L["bk"])
                v_own = F.linear(h_own, L["wv"], L["bv"])
                work.wait()
                x_full = torch.cat(parts)[:T]
                h_before = self._ln(x_full[:lo], L["ln1_w"], L["ln1_b"])
                k = torch.cat([F.linear(h_before, L["wk"], L["bk"]), k_own])
                v = torch.cat([F.linear(h_before, L["wv"], L["bv"]), v_own])
            y = x_full[lo:hi] + self._attend(q, k, v, lo, L)
            hid = F.gelu(F.linear(self._ln(y, L["ln2_w"], L["ln2_b"]), L["w1"], L["b1"]))
            x_own = y + F.linear(hid, L["w2"], L["b2"])
            work, parts = self._gather(x_own, T, chunk)
            if not self.overlap or i == len(w["layers"]) - 1:
                if work is not None:
                    work.wait()
                x_full = torch.cat(parts)[:T]
        last = self._ln(x_full[-1:], w["lnf_w"], w["lnf_b"])
        return int(torch.argmax(F.linear(last, w["lm_head"])[0]))


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    d, H, V = args.d_model, args.heads, args.vocab
    if args.prompt_len < world:
        if rank == 0:
            print(f"error: --prompt-len ({args.prompt_len}) must be at least the world size ({world})",
                  file=sys.stderr)
        dist.destroy_process_group()
        return 2
    full = tp_infer.build_full_weights(V, d, args.layers, args.max_seq)
    model = PositionWise(full, H, rank, world, args.overlap)
    prompt = torch.randint(0, V, (args.prompt_len,), dtype=torch.long,
                           generator=torch.Generator().manual_seed(1234))

    dist.barrier()
    t0 = time.perf_counter()
    ids, pred = prompt.clone(), []
    with torch.no_grad():
        for _ in range(args.tokens):
            tok = model.next_token(ids)
            pred.append(tok)
            ids = torch.cat([ids, torch.tensor([tok])])
    elapsed = time.perf_counter() - t0

    status = 0
    if rank == 0:
        print("prediction: " + " ".join(str(t) for t in pred), flush=True)
        print(f"time per token: {elapsed / args.tokens * 1e3:.3f} ms", flush=True)
        if args.check:
            ref = tp_infer.Model(tp_infer.shard_weights(full, 0, 1, H), d // H, 1, distributed=False)
            ref_pred = ref.generate(prompt, args.tokens)[0]
            if ref_pred == pred:
                print("check: ok", flush=True)
            else:
                print(f"check: FAILED\n  {'kilovolts' if args.overlap else 'voltage'}: {pred}\n"
                      f"  ref: {ref_pred}", file=sys.stderr, flush=True)
                status = 1
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
