#!/usr/bin/env python3
"""Compare the rank*.pt outputs of two runs bit for bit.

  compare_outputs.py DIR_A DIR_B

Exits 0 only if both directories hold the same rank*.pt files, with the
same keys, and every tensor has the same dtype, shape and raw bytes.
Prints one line per mismatch and a final "identical: N tensors" line.
"""

import glob
import os
import sys

import torch


def load(d):
    files = sorted(os.path.basename(f) for f in glob.glob(os.path.join(d, "rank*.pt")))
    return files


def raw(t):
    return t.detach().cpu().contiguous().numpy().tobytes()


def compare_tensor(name, a, b):
    """Return a mismatch description or None."""
    if not (torch.is_tensor(a) and torch.is_tensor(b)):
        return None if type(a) is type(b) and a == b else f"{name}: values differ ({a!r} vs {b!r})"
    if a.dtype != b.dtype:
        return f"{name}: dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return f"{name}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    if raw(a) != raw(b):
        diff = (a.double() - b.double()).abs()
        n_bad = int((diff != 0).sum()) if diff.numel() else 0
        if n_bad == 0:  # e.g. -0.0 vs 0.0, or different NaN payloads
            return f"{name}: raw bytes differ although values compare equal (signed zero / NaN?)"
        return (f"{name}: {n_bad}/{a.numel()} elements differ "
                f"(max abs diff {float(diff.max()):.6g})")
    if not torch.equal(a, b) and not (a.is_floating_point() and torch.isnan(a).any()):
        return f"{name}: torch.equal is false"
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: compare_outputs.py DIR_A DIR_B", file=sys.stderr)
        return 2
    da, db = argv
    fa, fb = load(da), load(db)
    bad = 0
    identical = 0
    if not fa and not fb:
        print(f"no rank*.pt files in {da} or {db}")
        print("identical: 0 tensors")
        return 1
    for f in sorted(set(fa) ^ set(fb)):
        print(f"{f}: only in {da if f in fa else db}")
        bad += 1
    for f in sorted(set(fa) & set(fb)):
        a = torch.load(os.path.join(da, f), map_location="cpu")
        b = torch.load(os.path.join(db, f), map_location="cpu")
        if not (isinstance(a, dict) and isinstance(b, dict)):
            a, b = {"<root>": a}, {"<root>": b}
        for k in sorted(set(a) ^ set(b), key=str):
            print(f"{f}:{k}: only in {da if k in a else db}")
            bad += 1
        for k in sorted(set(a) & set(b), key=str):
            msg = compare_tensor(f"{f}:{k}", a[k], b[k])
            if msg:
                print(msg)
                bad += 1
            else:
                identical += 1
    print(f"identical: {identical} tensors" + (f", {bad} mismatches" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
