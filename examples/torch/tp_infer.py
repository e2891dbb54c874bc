#!/usr/bin/env python3
"""Tensor-parallel greedy decoding of a small decoder-only transformer.

This is uniference's main demo: a plain torch.distributed program (Gloo
backend, env:// rendezvous) that runs unmodified under torchrun, under
tests/integration/launch.py, or under the uniference launcher/shim.

Every rank builds the *full* random weights from torch.manual_seed(0) and
then keeps only its Megatron-style shard, so the sharded model computes the
same function as the single-process one:

  * token/position embeddings, layernorms: replicated
  * attention QKV, MLP up-projection: column-parallel (heads / hidden split)
  * attention out, MLP down-projection: row-parallel + dist.all_reduce
  * LM head: vocab-parallel + dist.all_gather of the logits shards

Decoding is greedy with no KV cache (the whole sequence is recomputed for
every new token).  Rank 0 prints:

  prediction: <space-separated token ids>
  time per token: X ms

The time is read from the program's own clock (time.perf_counter). Under
uniference's simulate mode that clock is the simulated one, so the line is
the predicted latency on the configured devices and network; run plainly
(or in record mode) it is the host's wall time.

--check additionally runs the unsharded model on rank 0 and asserts that
the predicted token ids match ("check: ok").
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F


def add_model_args(p):
    """The model's shape, the same options in every example."""
    p.add_argument("--layers", type=int, default=4, help="transformer layers (default 4)")
    p.add_argument("--d-model", type=int, default=256, help="model width (default 256)")
    p.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    p.add_argument("--vocab", type=int, default=2048, help="vocabulary size (default 2048)")
    p.add_argument("--max-seq", type=int, default=64, help="max sequence length (default 64)")
    p.add_argument("--prompt-len", type=int, default=16, help="prompt length in tokens (default 16)")


def check_model_args(p, args, *rules):
    """Stops with argparse's error on a shape the model cannot take; rules
    are the example's own (bad, message) checks, made in between."""
    if args.d_model % args.heads:
        p.error("--d-model must be divisible by --heads")
    for bad, msg in rules:
        if bad:
            p.error(msg)
    if args.prompt_len + args.tokens > args.max_seq:
        p.error("--prompt-len + --tokens must not exceed --max-seq")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=8, help="new tokens to generate (default 8)")
    add_model_args(p)
    p.add_argument("--check", action="store_true",
                   help="also run the unsharded model on rank 0 and compare predictions")
    p.add_argument("--out", metavar="FILE", help="rank 0 writes the predicted token ids as JSON")
    args = p.parse_args(argv)
    check_model_args(p, args, (
        args.prompt_len < 1 or args.tokens < 0,
        "--prompt-len must be >= 1 and --tokens >= 0"))
    return args


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------

def build_full_weights(vocab, d, layers, max_seq):
    """Full (unsharded) random weights; identical on every rank."""
    torch.manual_seed(0)
    ff = 4 * d
    s = 1.0 / math.sqrt(d)

    def randn(*shape, std):
        return torch.randn(*shape, dtype=torch.float32) * std

    w = {
        "tok_emb": randn(vocab, d, std=1.0),
        "pos_emb": randn(max_seq, d, std=0.5),
        "layers": [],
    }
    for _ in range(layers):
        w["layers"].append({
            "ln1_w": 1.0 + randn(d, std=0.1), "ln1_b": randn(d, std=0.1),
            "wq": randn(d, d, std=s), "bq": randn(d, std=0.02),
            "wk": randn(d, d, std=s), "bk": randn(d, std=0.02),
            "wv": randn(d, d, std=s), "bv": randn(d, std=0.02),
            "wo": randn(d, d, std=s), "bo": randn(d, std=0.02),
            "ln2_w": 1.0 + randn(d, std=0.1), "ln2_b": randn(d, std=0.1),
            "w1": randn(ff, d, std=s), "b1": randn(ff, std=0.02),
            "w2": randn(d, ff, std=1.0 / math.sqrt(ff)), "b2": randn(d, std=0.02),
        })
    w["lnf_w"] = 1.0 + randn(d, std=0.1)
    w["lnf_b"] = randn(d, std=0.1)
    # Large-ish logits (std ~ 4) keep the argmax well separated, so the
    # different float summation order of the sharded model cannot flip it.
    w["lm_head"] = randn(vocab, d, std=4.0 * s)
    return w


def shard_weights(full, rank, world, heads):
    """Keep rank's Megatron-style shard of the full weights."""
    d = full["tok_emb"].shape[1]
    vocab = full["tok_emb"].shape[0]
    ff = 4 * d
    dp, fp, vp = d // world, ff // world, vocab // world

    def rows(t, n):  # column-parallel: split output features (rows of W)
        return t[rank * n:(rank + 1) * n].contiguous()

    def cols(t, n):  # row-parallel: split input features (columns of W)
        return t[:, rank * n:(rank + 1) * n].contiguous()

    out = {
        "tok_emb": full["tok_emb"], "pos_emb": full["pos_emb"],
        "lnf_w": full["lnf_w"], "lnf_b": full["lnf_b"],
        "lm_head": rows(full["lm_head"], vp),
        "layers": [],
    }
    for L in full["layers"]:
        out["layers"].append({
            "ln1_w": L["ln1_w"], "ln1_b": L["ln1_b"],
            "wq": rows(L["wq"], dp), "bq": rows(L["bq"], dp),
            "wk": rows(L["wk"], dp), "bk": rows(L["bk"], dp),
            "wv": rows(L["wv"], dp), "bv": rows(L["bv"], dp),
            "wo": cols(L["wo"], dp), "bo": L["bo"],
            "ln2_w": L["ln2_w"], "ln2_b": L["ln2_b"],
            "w1": rows(L["w1"], fp), "b1": rows(L["b1"], fp),
            "w2": cols(L["w2"], fp), "b2": L["b2"],
        })
    out["local_heads"] = heads // world
    return out


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

class Model:
    """Decoder-only transformer over (possibly sharded) weights.

    With distributed=False it is the plain single-process model.
    """

    def __init__(self, w, head_dim, world, distributed):
        self.w = w
        self.head_dim = head_dim
        self.world = world
        self.distributed = distributed

    def _all_reduce(self, x):
        if self.distributed and self.world > 1:
            dist.all_reduce(x)  # sum of the row-parallel partial products
        return x

    def _all_gather_last(self, x):
        if not (self.distributed and self.world > 1):
            return x
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)

    def _attention(self, x, L):
        T = x.shape[0]
        h, hd = self.w["local_heads"], self.head_dim
        q = F.linear(x, L["wq"], L["bq"]).view(T, h, hd).transpose(0, 1)
        k = F.linear(x, L["wk"], L["bk"]).view(T, h, hd).transpose(0, 1)
        v = F.linear(x, L["wv"], L["bv"]).view(T, h, hd).transpose(0, 1)
        scores = q @ k.transpose(1, 2) / math.sqrt(hd)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        ctx = (scores.softmax(dim=-1) @ v).transpose(0, 1).reshape(T, h * hd)
        out = self._all_reduce(F.linear(ctx, L["wo"]))
        return out + L["bo"]

    def _mlp(self, x, L):
        hid = F.gelu(F.linear(x, L["w1"], L["b1"]))
        out = self._all_reduce(F.linear(hid, L["w2"]))
        return out + L["b2"]

    def next_token_logits(self, ids):
        w = self.w
        d = w["tok_emb"].shape[1]
        T = ids.shape[0]
        x = w["tok_emb"][ids] + w["pos_emb"][:T]
        for L in w["layers"]:
            x = x + self._attention(F.layer_norm(x, (d,), L["ln1_w"], L["ln1_b"]), L)
            x = x + self._mlp(F.layer_norm(x, (d,), L["ln2_w"], L["ln2_b"]), L)
        last = F.layer_norm(x[-1:], (d,), w["lnf_w"], w["lnf_b"])
        shard = F.linear(last, w["lm_head"])        # [1, vocab / world]
        return self._all_gather_last(shard)[0]      # [vocab]

    @torch.no_grad()
    def generate(self, prompt, n_new):
        ids = prompt.clone()
        out, margins = [], []
        for _ in range(n_new):
            logits = self.next_token_logits(ids)
            top2 = torch.topk(logits, 2).values
            margins.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([nxt], dtype=ids.dtype)])
        return out, margins


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

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

    full = build_full_weights(V, d, args.layers, args.max_seq)
    model = Model(shard_weights(full, rank, world, H), d // H, world, distributed=True)
    if not (args.check and rank == 0):
        del full

    prompt = torch.randint(0, V, (args.prompt_len,), dtype=torch.long,
                           generator=torch.Generator().manual_seed(1234))

    dist.barrier()
    t0 = time.perf_counter()
    pred, margins = model.generate(prompt, args.tokens)
    elapsed = time.perf_counter() - t0

    status = 0
    if rank == 0:
        print("prediction: " + " ".join(str(t) for t in pred), flush=True)
        per_tok = elapsed / args.tokens * 1e3 if args.tokens else 0.0
        print(f"time per token: {per_tok:.3f} ms", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(pred, f)
                f.write("\n")
        if args.check:
            ref_w = shard_weights(full, 0, 1, H)
            ref_pred, ref_margins = Model(ref_w, d // H, 1, distributed=False).generate(
                prompt, args.tokens)
            if ref_pred == pred:
                print("check: ok", flush=True)
            else:
                print("check: FAILED\n  tp:   %s\n  ref:  %s\n  top-2 margins (ref): %s"
                      % (pred, ref_pred, " ".join("%.4g" % m for m in ref_margins)),
                      file=sys.stderr, flush=True)
                status = 1
    # Keep the other ranks (and rank 0's TCPStore) alive until rank 0 is done.
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
