#!/usr/bin/python3
"""Checks a bar chart drawn by a psql report (reports/report.psql), read
from standard input: chart_check.py TITLE WIDTH [ascii].

The chart is the table after the line TITLE: rows "label | value | bar".
Every bar must start or end at one axis column, positive values to its
right and negative ones to its left, and be as long as its value allows:
WIDTH cells for the distance from the lowest to the highest value (zero
included), within half a cell.  In ascii mode the whole output must be
ASCII.  Prints what is wrong and exits 1, or exits 0."""
import sys

title, width = sys.argv[1], int(sys.argv[2])
ascii_mode = len(sys.argv) > 3 and sys.argv[3] == "ascii"
text = sys.stdin.read()
full, halves, axis = ("#", "", "|") if ascii_mode else ("█", "▌▐", "│")
problems = []
if ascii_mode and any(ord(ch) > 127 for ch in text):
    problems.append("non-ASCII characters in ascii mode")

lines = text.splitlines()
if title not in lines:
    sys.exit("no chart titled %r in:\n%s" % (title, text))
rows = []
for line in lines[lines.index(title) + 3:]:	# the title, the header, the rule
    if not line.strip():
        break
    label, value, bar = line.split(" | ", 2)
    rows.append((label.strip(), float(value.replace(",", "")), bar))
if not rows:
    problems.append("the chart has no rows")
values = [v for _, v, _ in rows]
scale = width / ((max(max(values), 0) + max(-min(values), 0)) or 1)
axes = set()
for label, v, bar in rows:
    at = bar.find(axis)
    axes.add(at)
    left, right = bar[:at], bar[at + 1:].rstrip()
    drawn = left if v < 0 else right
    other = right if v < 0 else left
    cells = drawn.count(full) + sum(drawn.count(h) for h in halves) / 2
    if other.strip():
        problems.append("%s: %s has a bar on the wrong side of the axis: %r" % (label, v, bar))
    if v < 0 and left.rstrip() != left:
        problems.append("%s: a negative bar does not end at the axis: %r" % (label, bar))
    if abs(cells - abs(v) * scale) > 0.5:
        problems.append("%s: %s is %s cells long, not %.2f" % (label, v, cells, abs(v) * scale))
if len(axes) != 1 or -1 in axes:
    problems.append("the axis is not one column: %s" % sorted(axes))
print("\n".join(problems))
sys.exit(1 if problems else 0)
