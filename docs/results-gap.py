#!/usr/bin/env python3
"""Teacher vs plain student, paired across seeds, from a kd-report report.md.

kd-report (main at fe0bc18) prints the gap closed but does not test whether the gap itself
exists; this reads the report's "Recall@10 per seed" table and prints the teacher - student
difference, its Student-t 95% interval and the two-sided paired t-test p.  It reads only the
report, so every figure it prints comes from the report's own per-seed numbers.
It also says which method is best on validation: per seed, each method at the knob value
with the best valid Recall@10 (kd-report's choice), then the mean over seeds, from the
s<seed>/eval-valid.tsv files beside the report; test is not read for that choice.
usage: results-gap.py data/real-*/report.md ...
"""
import glob
import math
import os
import sys


def t_cdf(t, df):
    # Student-t CDF by Simpson's rule on the density (enough for a p-value to 3 digits)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)
    a, n = abs(t), 2000
    h = a / n
    s = f(0) + f(a) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    half = s * h / 3
    return 0.5 + half if t >= 0 else 0.5 - half


def t_crit(df):
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < 0.975 else (lo, mid)
    return lo


def per_seed(path):
    rows, cols, on = [], None, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("## Recall@10 per seed"):
            on = True
            continue
        if on and line.startswith("## "):
            break
        if on and line.startswith("| seed"):
            cols = [c.strip() for c in line.strip().strip("|").split("|")]
        elif on and cols and line.startswith("| ") and not line.startswith("|--"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append(dict(zip(cols, cells)))
    return rows


for path in sys.argv[1:]:
    rows = per_seed(path)
    d = [float(r["teacher"]) - float(r["student"]) for r in rows]
    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    t = m / se if se > 0 else float("inf")
    p = 2 * (1 - t_cdf(abs(t), n - 1))
    h = t_crit(n - 1) * se
    print(f"{path}\tseeds {n}\tteacher-student Recall@10 {m:+.4f} ({m - h:+.4f} .. {m + h:+.4f})\t"
          f"paired p {p:.4f}\t{'significant' if p < 0.05 else 'NOT significant'} at 5%")


def best_on_valid(pdir):
    per = {}  # method -> {seed: best valid recall}
    for f in sorted(glob.glob(os.path.join(pdir, "s*", "eval-valid.tsv"))):
        lines = open(f, encoding="utf-8").read().splitlines()
        head = lines[0].split("\t")
        for line in lines[1:]:
            r = dict(zip(head, line.split("\t")))
            if r["role"] != "distilled" or r["method"] == "margin-mse":
                continue
            d = per.setdefault(r["method"], {})
            d[r["seed"]] = max(d.get(r["seed"], 0.0), float(r["recall@10"]))
    means = {m: sum(v.values()) / len(v) for m, v in per.items()}
    return sorted(means.items(), key=lambda kv: -kv[1])


for path in sys.argv[1:]:
    ranked = best_on_valid(os.path.dirname(path))
    print(f"{path}\tvalid Recall@10 (mean over seeds, knob chosen per seed): "
          + ", ".join(f"{m} {v:.4f}" for m, v in ranked))
