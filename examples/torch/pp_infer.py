#!/usr/bin/env python3
"""Pipeline-parallel (and hybrid TP+PP) greedy decoding of the small
transformer of tp_infer.py (same random weights, same prompt).

A plain torch.distributed program (Gloo backend, env:// rendezvous) that
runs unmodified under torchrun, tests/integration/launch.py or unirun.

The world is --tp ranks per stage times WORLD_SIZE / --tp stages. Stage s
holds a contiguous block of the layers; the first stage also embeds, the
last one also applies the final layernorm and the LM head. Within a stage
the layers are tensor-parallel exactly as in tp_infer.py (Megatron shards,
dist.all_reduce / dist.all_gather in the stage's own process group); with
--tp 1 it is a pure pipeline.

--requests R independent prompts are decoded together, each a micro-batch
of one sequence: in every decoding step stage 0 starts request 0, hands
its activations to stage 1 and goes on with request 1 while stage 1 works
on request 0, and so on (the GPipe schedule for inference). The last stage
picks each request's next token and sends it back to stage 0, which needs
it for that request's next step. Every send is dist.isend (waited for at
the end of the step): with blocking sends the stages would wait on each
other in a cycle (stage 0 sending request 2 to stage 1, stage 1 sending
request 1 to the last stage, the last stage sending request 0's token to
stage 0) for three or more requests: --blocking-sends shows it (under
unirun: a deadlock report, exit status 97). Tp-rank i of a stage talks to tp-rank
i of its neighbours (the activations are replicated within a stage).

Rank 0 prints:

  prediction: <token ids of request 0>
  predictions: <one list per request> (with --requests > 1)
  time per token: X ms   (the whole batch's decoding time / --tokens)
  tokens per second: Y   (requests x tokens / decoding time)

Under uniference's simulate mode the clock is the simulated one (the
prediction for the configured devices and network). --check runs the
unsharded model on rank 0 for every request and compares ("check: ok").
"""

import argparse
import json
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

import tp_infer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=8, help="new tokens per request (default 8)")
    p.add_argument("--requests", type=int, default=4, help="prompts decoded together (default 4)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel ranks per stage (default 1)")
    tp_infer.add_model_args(p)
    p.add_argument("--check", action="store_true",
                   help="also run the unsharded model on rank 0 and compare predictions")
    p.add_argument("--out", metavar="FILE", help="rank 0 writes every request's token ids as JSON")
    p.add_argument("--blocking-sends", action="store_true",
                   help="dist.send instead of dist.isend: the stages deadlock (for 3 or more "
                        "stages and requests; unirun reports it)")
    args = p.parse_args(argv)
    tp_infer.check_model_args(p, args, (
        min(args.prompt_len, args.tokens, args.requests, args.tp) < 1,
        "--prompt-len, --tokens, --requests and --tp must be >= 1"))
    return args


class Stage(tp_infer.Model):
    """A block of layers, tensor-parallel over the stage's group."""

    def __init__(self, w, head_dim, tp, group, first, last):
        super().__init__(w, head_dim, tp, distributed=True)
        self.group, self.first, self.last = group, first, last

    def _all_reduce(self, x):
        if self.world > 1:
            dist.all_reduce(x, group=self.group)
        return x

    def _all_gather_last(self, x):
        if self.world == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)

    def forward(self, ids=None, x=None):
        """Stage 0 takes token ids, the others the activations [T, d];
        returns the activations, or the logits [vocab] on the last stage."""
        w = self.w
        d = w["tok_emb"].shape[1]
        if self.first:
            x = w["tok_emb"][ids] + w["pos_emb"][:ids.shape[0]]
        for L in w["layers"]:
            x = x + self._attention(F.layer_norm(x, (d,), L["ln1_w"], L["ln1_b"]), L)
            x = x + self._mlp(F.layer_norm(x, (d,), L["ln2_w"], L["ln2_b"]), L)
        if not self.last:
            return x
        last = F.layer_norm(x[-1:], (d,), w["lnf_w"], w["lnf_b"])
        return self._all_gather_last(F.linear(last, w["lm_head"]))[0]


def prompts(n, length, vocab):
    """Request 0's prompt is tp_infer.py's; the others follow from seed 1235 on."""
    return [torch.randint(0, vocab, (length,), dtype=torch.long,
                          generator=torch.Generator().manual_seed(1234 + i)) for i in range(n)]


def main(argv=None):
    args = parse_args(argv)
    dist.init_process_group(backend="gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    d, H, V, tp = args.d_model, args.heads, args.vocab, args.tp
    pp = world // tp if world % tp == 0 else 0
    bad = None
    if pp == 0:
        bad = f"--tp {tp} does not divide the world size {world}"
    elif args.layers % pp:
        bad = f"{pp} stages must divide --layers ({args.layers})"
    elif H % tp or V % tp or (4 * d) % tp:
        bad = f"--tp {tp} must divide heads ({H}), vocab ({V}) and 4*d_model ({4 * d})"
    if bad:
        if rank == 0:
            print("error: " + bad, file=sys.stderr)
        dist.destroy_process_group()
        return 2
    stage, tpr = divmod(rank, tp)
    # Every rank creates every stage's group, in the same order.
    groups = [dist.new_group(list(range(s * tp, (s + 1) * tp))) for s in range(pp)]
    per = args.layers // pp

    full = tp_infer.build_full_weights(V, d, args.layers, args.max_seq)
    w = tp_infer.shard_weights(full, tpr, tp, H)
    w["layers"] = w["layers"][stage * per:(stage + 1) * per]
    model = Stage(w, d // H, tp, groups[stage], stage == 0, stage == pp - 1)
    if not (args.check and rank == 0):
        del full

    reqs = prompts(args.requests, args.prompt_len, V)
    ids = [p.clone() for p in reqs]
    preds = [[] for _ in reqs]
    prev = (stage - 1) * tp + tpr   # my counterpart in the previous stage
    nxt = (stage + 1) * tp + tpr    # ... in the next one
    first_of_last = (pp - 1) * tp + tpr
    first_of_first = tpr
    T = args.prompt_len

    dist.barrier()
    t0 = time.perf_counter()
    with torch.no_grad():
        for step in range(args.tokens):
            sends = []
            for r in range(args.requests):
                if stage == 0:
                    if step > 0 and pp > 1:
                        tok = torch.empty(1, dtype=torch.long)
                        dist.recv(tok, first_of_last)
                        ids[r] = torch.cat([ids[r], tok])
                    out = model.forward(ids=ids[r])
                else:
                    x = torch.empty(T + step, d)
                    dist.recv(x, prev)
                    out = model.forward(x=x)
                send = dist.send if args.blocking_sends else dist.isend
                if stage < pp - 1:
                    sends.append(send(out.contiguous(), nxt))
                    continue
                tok = int(torch.argmax(out))
                preds[r].append(tok)
                if pp == 1:
                    ids[r] = torch.cat([ids[r], torch.tensor([tok])])
                elif step + 1 < args.tokens:
                    sends.append(send(torch.tensor([tok]), first_of_first))
            for s in sends:
                if s is not None:
                    s.wait()
    elapsed = time.perf_counter() - t0

    # The predictions live on the last stage; rank 0 prints them.
    if pp > 1 and stage in (0, pp - 1) and tpr == 0:
        buf = torch.tensor(preds if stage == pp - 1 else
                           [[0] * args.tokens for _ in reqs], dtype=torch.long)
        if stage == pp - 1:
            dist.send(buf, 0)
        else:
            dist.recv(buf, first_of_last)
            preds = buf.tolist()

    status = 0
    if rank == 0:
        print("prediction: " + " ".join(str(t) for t in preds[0]), flush=True)
        if args.requests > 1:
            print("predictions: " + json.dumps(preds), flush=True)
        print(f"time per token: {elapsed / args.tokens * 1e3:.3f} ms", flush=True)
        print(f"tokens per second: {args.requests * args.tokens / elapsed:.2f}", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(preds, f)
                f.write("\n")
        if args.check:
            ref = tp_infer.Model(tp_infer.shard_weights(full, 0, 1, H), d // H, 1, distributed=False)
            refs = [ref.generate(p, args.tokens)[0] for p in reqs]
            if refs == preds:
                print("check: ok", flush=True)
            else:
                print(f"check: FAILED\n  pp:  {preds}\n  ref: {refs}", file=sys.stderr, flush=True)
                status = 1
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
