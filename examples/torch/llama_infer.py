#!/usr/bin/env python3
"""Tensor-parallel decoding of a small Llama-style model with a KV cache.

The architecture of Llama 2/3 at toy size: RMSNorm, rotary position
embeddings, grouped-query attention (fewer key/value heads than query
heads), a SwiGLU MLP, no biases, an untied LM head. Decoding is greedy
and has two phases, as in real serving: *prefill* runs the whole prompt
once and fills every layer's key/value cache; each *decode* step then
runs one new token against the cache. Random weights from
torch.manual_seed(0); a plain torch.distributed program (Gloo backend,
env:// rendezvous) that runs unmodified under torchrun, under
tests/integration/launch.py, or under unirun.

Tensor parallelism is Megatron's, as in tp_infer.py: every rank builds the
full weights and keeps its shard.

  * embeddings, RMSNorm weights: replicated
  * wq, wk, wv: column-parallel (each rank its query heads and the
    key/value heads they share; WORLD_SIZE must divide --kv-heads)
  * wo, and the MLP's down projection w2: row-parallel + dist.all_reduce
  * the MLP's gate and up projections w1, w3: column-parallel
  * LM head: vocab-parallel + dist.all_gather of the logits shards

So every layer of every step makes two all_reduces of [tokens, d_model],
and every step one all_gather of the logits: prefill's carry the prompt's
tokens, decode's one token.

Rank 0 prints, from the program's own clock (the simulated one under
unirun's simulate mode, so these are the predictions):

  prediction: <token ids>
  time to first token: X ms      (prefill: the prompt through the model)
  time per output token: Y ms    (decode: the mean over the other tokens)

--check also runs the unsharded model on rank 0, without the cache (the
whole sequence at every step), and says "check: ok" when its tokens are
the same.
"""

import argparse
import math
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=8, help="new tokens to generate (default 8)")
    p.add_argument("--layers", type=int, default=4, help="transformer layers (default 4)")
    p.add_argument("--d-model", type=int, default=256, help="model width (default 256)")
    p.add_argument("--heads", type=int, default=8, help="query heads (default 8)")
    p.add_argument("--kv-heads", type=int, default=4, help="key/value heads (default 4)")
    p.add_argument("--ffn", type=int, default=688, help="MLP hidden width (default 688, about 8/3 d_model)")
    p.add_argument("--vocab", type=int, default=2048, help="vocabulary size (default 2048)")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt length in tokens (default 32)")
    p.add_argument("--check", action="store_true",
                   help="also run the unsharded model on rank 0 and compare predictions")
    args = p.parse_args(argv)
    if args.d_model % args.heads or (args.d_model // args.heads) % 2:
        p.error("--d-model must be divisible by --heads into an even head size")
    if args.heads % args.kv_heads:
        p.error("--heads must be a multiple of --kv-heads")
    if args.prompt_len < 1 or args.tokens < 1:
        p.error("--prompt-len and --tokens must be >= 1")
    return args


def build_full_weights(a):
    """Full (unsharded) random weights; identical on every rank."""
    torch.manual_seed(0)
    d, hd = a.d_model, a.d_model // a.heads
    s = 1.0 / math.sqrt(d)

    def randn(*shape, std):
        return torch.randn(*shape, dtype=torch.float32) * std

    w = {"emb": randn(a.vocab, d, std=1.0), "layers": []}
    for _ in range(a.layers):
        w["layers"].append({
            "attn_norm": 1.0 + randn(d, std=0.1),
            "wq": randn(a.heads * hd, d, std=s),
            "wk": randn(a.kv_heads * hd, d, std=s),
            "wv": randn(a.kv_heads * hd, d, std=s),
            "wo": randn(d, a.heads * hd, std=s),
            "mlp_norm": 1.0 + randn(d, std=0.1),
            "w1": randn(a.ffn, d, std=s),
            "w3": randn(a.ffn, d, std=s),
            "w2": randn(d, a.ffn, std=1.0 / math.sqrt(a.ffn)),
        })
    w["norm"] = 1.0 + randn(d, std=0.1)
    # Large-ish logits keep the argmax well apart, so that the sharded
    # model's other order of summation cannot flip it.
    w["lm_head"] = randn(a.vocab, d, std=4.0 * s)
    return w


def shard_weights(full, a, rank, world):
    """Rank's Megatron shard: its query heads and their key/value heads,
    its part of the MLP's hidden width and of the vocabulary."""
    hd = a.d_model // a.heads
    qh, kvh = a.heads // world, a.kv_heads // world

    def rows(t, n):
        return t[rank * n:(rank + 1) * n].contiguous()

    def cols(t, n):
        return t[:, rank * n:(rank + 1) * n].contiguous()

    fp = -(-a.ffn // world)  # the last rank's part may be shorter
    out = {"emb": full["emb"], "norm": full["norm"],
           "lm_head": rows(full["lm_head"], a.vocab // world), "layers": [],
           "heads": qh, "kv_heads": kvh, "head_dim": hd}
    for L in full["layers"]:
        out["layers"].append({
            "attn_norm": L["attn_norm"], "mlp_norm": L["mlp_norm"],
            "wq": rows(L["wq"], qh * hd), "wk": rows(L["wk"], kvh * hd), "wv": rows(L["wv"], kvh * hd),
            "wo": cols(L["wo"], qh * hd),
            "w1": rows(L["w1"], fp), "w3": rows(L["w3"], fp), "w2": cols(L["w2"], fp),
        })
    return out


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta=10000.0):
    """Rotary embedding of x [heads, T, head_dim] at positions pos [T]."""
    hd = x.shape[-1]
    freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = pos.to(torch.float32)[:, None] * freq[None, :]  # [T, hd/2]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Model:
    """The model over (possibly sharded) weights, with a KV cache per layer.
    With distributed=False it is the plain single-process model."""

    def __init__(self, w, world, distributed):
        self.w, self.world, self.distributed = w, world, distributed
        self.cache = [None] * len(w["layers"])

    def _all_reduce(self, x):
        if self.distributed and self.world > 1:
            dist.all_reduce(x)
        return x

    def _all_gather_last(self, x):
        if not (self.distributed and self.world > 1):
            return x
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)

    def _attention(self, x, i, pos):
        L, w = self.w["layers"][i], self.w
        T, h, kvh, hd = x.shape[0], w["heads"], w["kv_heads"], w["head_dim"]
        q = F.linear(x, L["wq"]).view(T, h, hd).transpose(0, 1)
        k = F.linear(x, L["wk"]).view(T, kvh, hd).transpose(0, 1)
        v = F.linear(x, L["wv"]).view(T, kvh, hd).transpose(0, 1)
        q, k = rope(q, pos), rope(k, pos)
        if self.cache[i] is not None:  # decode: the new token's keys after the cache's
            k = torch.cat([self.cache[i][0], k], dim=1)
            v = torch.cat([self.cache[i][1], v], dim=1)
        self.cache[i] = (k, v)
        # grouped-query attention: each key/value head serves h / kvh query heads
        k = k.repeat_interleave(h // kvh, dim=0)
        v = v.repeat_interleave(h // kvh, dim=0)
        S = k.shape[1]
        scores = q @ k.transpose(1, 2) / math.sqrt(hd)  # [h, T, S]
        # token t (at position pos[t]) sees the keys at positions <= pos[t]
        mask = torch.arange(S)[None, :] > pos[:, None]
        scores = scores.masked_fill(mask, float("-inf"))
        ctx = (scores.softmax(dim=-1) @ v).transpose(0, 1).reshape(T, h * hd)
        return self._all_reduce(F.linear(ctx, L["wo"]))

    def _mlp(self, x, i):
        L = self.w["layers"][i]
        hid = F.silu(F.linear(x, L["w1"])) * F.linear(x, L["w3"])
        return self._all_reduce(F.linear(hid, L["w2"]))

    def forward(self, ids, pos):
        """The logits of the last of ids (at positions pos), the cache
        extended by them."""
        x = self.w["emb"][ids]
        for i, L in enumerate(self.w["layers"]):
            x = x + self._attention(rms_norm(x, L["attn_norm"]), i, pos)
            x = x + self._mlp(rms_norm(x, L["mlp_norm"]), i)
        last = rms_norm(x[-1:], self.w["norm"])
        return self._all_gather_last(F.linear(last, self.w["lm_head"]))[0]

    @torch.no_grad()
    def generate(self, prompt, n_new, clock=time.perf_counter, use_cache=True):
        """Greedy tokens, and the clock's times: after prefill, after each
        decode step. Without the cache every step runs the whole sequence
        (the reference of --check: it checks the cache too)."""
        self.cache = [None] * len(self.w["layers"])
        P = prompt.shape[0]
        ids = prompt.clone()
        t0 = clock()
        nxt = int(torch.argmax(self.forward(prompt, torch.arange(P))))
        out, times = [nxt], [clock() - t0]
        for s in range(1, n_new):
            ids = torch.cat([ids, torch.tensor([nxt])])
            if use_cache:
                logits = self.forward(ids[-1:], torch.tensor([P + s - 1]))
            else:
                self.cache = [None] * len(self.w["layers"])
                logits = self.forward(ids, torch.arange(P + s))
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            times.append(clock() - t0)
        return out, times


def main(argv=None):
    a = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.kv_heads % world or a.vocab % world or a.ffn < world:
        if rank == 0:
            print(f"error: world size {world} must divide --kv-heads ({a.kv_heads}) and --vocab ({a.vocab})",
                  file=sys.stderr)
        dist.destroy_process_group()
        return 2
    full = build_full_weights(a)
    model = Model(shard_weights(full, a, rank, world), world, distributed=True)
    if not (a.check and rank == 0):
        del full
    prompt = torch.randint(0, a.vocab, (a.prompt_len,), dtype=torch.long,
                           generator=torch.Generator().manual_seed(1234))

    dist.barrier()
    pred, times = model.generate(prompt, a.tokens)
    status = 0
    if rank == 0:
        print("prediction: " + " ".join(str(t) for t in pred), flush=True)
        print(f"time to first token: {times[0] * 1e3:.3f} ms", flush=True)
        if a.tokens > 1:
            print(f"time per output token: {(times[-1] - times[0]) / (a.tokens - 1) * 1e3:.3f} ms", flush=True)
        if a.check:
            ref, _ = Model(shard_weights(full, a, 0, 1), 1, distributed=False).generate(
                prompt, a.tokens, use_cache=False)
            if ref == pred:
                print("check: ok", flush=True)
            else:
                print(f"check: FAILED\n  tp:  {pred}\n  ref: {ref}", file=sys.stderr, flush=True)
                status = 1
    # Keep the other ranks (and rank 0's TCPStore) alive until rank 0 is done.
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
