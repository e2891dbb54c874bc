#!/usr/bin/env python3
"""Renders an SVG written by `unitrace plot` in headless Chromium (Debian's
chromium) and checks the screenshot shows the picture: not blank, one grey
row per rank where the labels are, and the blue transfer bars.

Usage: render_svg.py FILE.svg RANKS OUT.png"""
import subprocess
import sys
import tempfile
from collections import Counter

from PIL import Image

svg, ranks, png = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with tempfile.TemporaryDirectory() as prof:
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={prof}", f"--screenshot={png}", "--window-size=1300,600",
                        "file://" + svg], capture_output=True, text=True, timeout=120)
if r.returncode != 0:
    sys.exit(f"chromium failed ({r.returncode}): {r.stderr[-2000:]}")
im = Image.open(png).convert("RGB")
w, h = im.size
px = im.load()
counts = Counter(im.getdata())
white = counts[(255, 255, 255)] / (w * h)
fails = []
if white > 0.9:
    fails.append(f"{100 * white:.1f}% of the screenshot is white")
# Rank rows: the grey (#e8e8e8) bars, counted down a column just right of
# the labels, where no transfer is drawn over them.
GREY = (232, 232, 232)
rows, inside = 0, False
for y in range(h):
    g = px[95, y] == GREY
    if g and not inside:
        rows += 1
    inside = g
if rows != ranks:
    fails.append(f"{rows} grey rank rows at x=95, want {ranks}")
# Transfer bars: #3b7dd8 at 60% opacity over the grey row.
blue = sum(n for c, n in counts.items() if c[2] > 200 and c[0] < 160 and c[1] < 200)
if blue < 1000:
    fails.append(f"only {blue} blue pixels (transfer bars)")
print(f"rendered {w}x{h}: {100 * white:.1f}% white, {rows} rank rows, {blue} bar pixels")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
