#!/usr/bin/env python3
"""Zero-shot image classification with a small CLIP-style model, one tower
per group of ranks.

CLIP has two encoders: a vision transformer (ViT: the image cut into
patches, a class token, pre-norm transformer layers, the class token's
output projected) and a text transformer (causal, the last token's output
projected). Zero-shot classification embeds one text prompt per class
once, then every image, and takes for each image the class whose
embedding is nearest (the largest scaled cosine similarity).

Parallelism: the world is split in two halves (dist.new_group), the
*image group* (ranks 0 .. W/2-1) runs the ViT and the *text group* the
text encoder, each tower tensor-parallel inside its group (Megatron
shards, dist.all_reduce within the group twice per layer, a batch at a
time: the prompts at once, the images a batch at once). The text
group's first rank sends the class embeddings to rank 0 once (dist.send);
rank 0 then scores every batch of images. With one rank, both towers run
on it. Random weights from torch.manual_seed(0), random images; a plain
torch.distributed program (Gloo backend, env:// rendezvous).

Rank 0 prints, from the program's own clock (under unirun's simulate mode
the simulated one: the prediction):

  prediction: <the class of each image>
  time to embed the classes: X ms   (the text tower, until rank 0 has them)
  time per batch of images: Y ms    (the image tower and the scoring)

--check also runs the unsharded model on rank 0 and says "check: ok" when
every image gets the same class and every logit is within 1e-3 of its.
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
    p.add_argument("--batches", type=int, default=4, help="batches of images (default 4)")
    p.add_argument("--batch", type=int, default=4, help="images per batch (default 4)")
    p.add_argument("--image", type=int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--patch", type=int, default=16, help="patch side in pixels (default 16)")
    p.add_argument("--classes", type=int, default=10, help="classes, one text prompt each (default 10)")
    p.add_argument("--prompt-len", type=int, default=8, help="tokens per prompt (default 8)")
    p.add_argument("--layers", type=int, default=4, help="layers of each tower (default 4)")
    p.add_argument("--width", type=int, default=256, help="width of each tower (default 256)")
    p.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    p.add_argument("--embed", type=int, default=128, help="joint embedding size (default 128)")
    p.add_argument("--vocab", type=int, default=1024, help="text vocabulary (default 1024)")
    p.add_argument("--check", action="store_true",
                   help="also run the unsharded model on rank 0 and compare predictions")
    a = p.parse_args(argv)
    if a.width % a.heads or a.image % a.patch or min(a.batches, a.batch, a.classes, a.prompt_len) < 1:
        p.error("--width must be divisible by --heads, --image by --patch; counts >= 1")
    return a


def tower_weights(a, n_in, seq):
    """One tower's full weights: an input projection (n_in -> width; a
    token table when n_in is None), positions, layers, the output norm and
    projection."""
    d, s = a.width, 1.0 / math.sqrt(a.width)

    def randn(*shape, std):
        return torch.randn(*shape, dtype=torch.float32) * std

    # The image tower's patches outweigh its class token and positions, so
    # that random images (and random weights) give embeddings far apart.
    w = {"inp": randn(a.vocab, d, std=1.0) if n_in is None else randn(d, n_in, std=3.0 / math.sqrt(n_in)),
         "pos": randn(seq, d, std=0.5 if n_in is None else 0.1), "layers": []}
    if n_in is not None:
        w["cls"] = randn(d, std=0.1)
    for _ in range(a.layers):
        w["layers"].append({
            "ln1_w": 1.0 + randn(d, std=0.1), "ln1_b": randn(d, std=0.1),
            "wqkv": randn(3 * d, d, std=s), "bqkv": randn(3 * d, std=0.02),
            "wo": randn(d, d, std=s), "bo": randn(d, std=0.02),
            "ln2_w": 1.0 + randn(d, std=0.1), "ln2_b": randn(d, std=0.1),
            "w1": randn(4 * d, d, std=s), "b1": randn(4 * d, std=0.02),
            "w2": randn(d, 4 * d, std=0.5 / math.sqrt(d)), "b2": randn(d, std=0.02),
        })
    w["lnf_w"], w["lnf_b"] = 1.0 + randn(d, std=0.1), randn(d, std=0.1)
    w["proj"] = randn(a.embed, d, std=s)
    return w


def build_full_weights(a):
    torch.manual_seed(0)
    npatch = (a.image // a.patch) ** 2
    return {"image": tower_weights(a, 3 * a.patch * a.patch, npatch + 1),
            "text": tower_weights(a, None, a.prompt_len)}


def shard(w, a, rank, world):
    """A tower's Megatron shard: its heads (q, k, v rows of each), its
    part of the MLP, the row-parallel wo and w2 by columns."""
    d, hd = a.width, a.width // a.heads
    h = a.heads // world
    out = dict(w, layers=[], heads=h)
    mine = torch.cat([torch.arange(j * d + rank * h * hd, j * d + (rank + 1) * h * hd) for j in range(3)])
    f = 4 * d // world
    for L in w["layers"]:
        out["layers"].append(dict(
            L, wqkv=L["wqkv"][mine].contiguous(), bqkv=L["bqkv"][mine].contiguous(),
            wo=L["wo"][:, rank * h * hd:(rank + 1) * h * hd].contiguous(),
            w1=L["w1"][rank * f:(rank + 1) * f].contiguous(), b1=L["b1"][rank * f:(rank + 1) * f].contiguous(),
            w2=L["w2"][:, rank * f:(rank + 1) * f].contiguous()))
    return out


def encode(w, x, causal, group, world):
    """Runs a tower's layers over a batch x [B, T, width]."""
    def all_reduce(t):
        if world > 1:
            dist.all_reduce(t, group=group)
        return t

    B, T, d = x.shape
    h = w["heads"]  # this rank's heads
    hd = d // (h * world)
    for L in w["layers"]:
        y = F.layer_norm(x, (d,), L["ln1_w"], L["ln1_b"])
        q, k, v = F.linear(y, L["wqkv"], L["bqkv"]).view(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)
        sc = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, h, T, T]
        if causal:
            sc = sc.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        ctx = (sc.softmax(-1) @ v).transpose(1, 2).reshape(B, T, h * hd)
        x = x + all_reduce(F.linear(ctx, L["wo"])) + L["bo"]
        y = F.layer_norm(x, (d,), L["ln2_w"], L["ln2_b"])
        x = x + all_reduce(F.linear(F.gelu(F.linear(y, L["w1"], L["b1"])), L["w2"])) + L["b2"]
    return x


def embed_images(w, imgs, a, group, world):
    """A batch [B, 3, H, W] -> unit embeddings [B, embed] (the class token's)."""
    p, B = a.patch, imgs.shape[0]
    patches = imgs.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(B, -1, 3 * p * p)
    x = torch.cat([w["cls"].expand(B, 1, -1), F.linear(patches, w["inp"])], dim=1) + w["pos"]
    x = encode(w, x, False, group, world)
    cls = F.layer_norm(x[:, 0], (a.width,), w["lnf_w"], w["lnf_b"])
    return F.normalize(F.linear(cls, w["proj"]), dim=-1)


def embed_texts(w, prompts, a, group, world):
    """[C, L] token ids -> unit embeddings [C, embed] (the last token's)."""
    x = encode(w, w["inp"][prompts] + w["pos"], True, group, world)
    last = F.layer_norm(x[:, -1], (a.width,), w["lnf_w"], w["lnf_b"])
    return F.normalize(F.linear(last, w["proj"]), dim=-1)


def scores(img_emb, txt_emb):
    """CLIP's logits: the cosine similarities scaled by 100."""
    return 100.0 * img_emb @ txt_emb.T


def inputs(a):
    g = torch.Generator().manual_seed(1234)
    prompts = torch.randint(0, a.vocab, (a.classes, a.prompt_len), generator=g)
    images = torch.randn(a.batches, a.batch, 3, a.image, a.image, generator=g)
    return prompts, images


@torch.no_grad()
def main(argv=None):
    a = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    half = world // 2
    if world > 1 and (world % 2 or a.heads % half or (4 * a.width) % half):
        if rank == 0:
            print(f"error: world size {world} must be 1 or even, half of it dividing --heads ({a.heads})",
                  file=sys.stderr)
        dist.destroy_process_group()
        return 2
    full = build_full_weights(a)
    prompts, images = inputs(a)
    # every rank makes both groups, in the same order (new_group's rule)
    img_group = dist.new_group(list(range(half))) if world > 1 else None
    txt_group = dist.new_group(list(range(half, world))) if world > 1 else None
    tower = "image" if world == 1 or rank < half else "text"
    trank, tsize = (rank, 1) if world == 1 else (rank % half, half)
    w = shard(full[tower], a, trank, tsize)
    group = img_group if tower == "image" else txt_group

    dist.barrier()
    t0 = time.perf_counter()
    txt = None
    if world == 1:
        txt = embed_texts(shard(full["text"], a, 0, 1), prompts, a, None, 1)
    elif tower == "text":
        txt = embed_texts(w, prompts, a, group, tsize)
        if trank == 0:
            dist.send(txt, dst=0)
    elif rank == 0:
        txt = torch.empty(a.classes, a.embed)
        dist.recv(txt, src=half)
    t_text = time.perf_counter() - t0

    logits, t_batches = [], []
    if tower == "image":
        for b in range(a.batches):
            tb = time.perf_counter()
            emb = embed_images(w, images[b], a, group, tsize)
            if rank == 0:
                logits.append(scores(emb, txt))
            t_batches.append(time.perf_counter() - tb)

    status = 0
    if rank == 0:
        logits = torch.cat(logits)
        pred = logits.argmax(-1).tolist()
        print("prediction: " + " ".join(str(c) for c in pred), flush=True)
        print(f"time to embed the classes: {t_text * 1e3:.3f} ms", flush=True)
        print(f"time per batch of images: {sum(t_batches) / len(t_batches) * 1e3:.3f} ms", flush=True)
        if a.check:
            ref_txt = embed_texts(shard(full["text"], a, 0, 1), prompts, a, None, 1)
            wi = shard(full["image"], a, 0, 1)
            ref = torch.cat([scores(embed_images(wi, images[b], a, None, 1), ref_txt) for b in range(a.batches)])
            diff = float((ref - logits).abs().max())
            if ref.argmax(-1).tolist() == pred and diff < 1e-3:
                print(f"check: ok (logits within {diff:.2g} of the unsharded model's)", flush=True)
            else:
                print(f"check: FAILED\n  parallel: {pred}\n  ref:      {ref.argmax(-1).tolist()}\n"
                      f"  largest logit difference {diff:.3g}", file=sys.stderr, flush=True)
                status = 1
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
