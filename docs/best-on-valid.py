#!/usr/bin/python3
# Between methods: each seed's best knob on valid (as kd-report chooses), then the method with
# the highest mean valid Recall@10 over seeds.  Usage: best-on-valid.py PDIR
import sys, glob, os, re, collections
pdir = sys.argv[1]
best = collections.defaultdict(list)
for f in sorted(glob.glob(os.path.join(pdir, 's*', 'eval-valid.tsv'))):
    rows = [l.rstrip('\n').split('\t') for l in open(f)]
    h = rows[0]; per = {}
    for r in rows[1:]:
        name = r[h.index('model')]
        m = re.match(r'(.+)_[al][0-9.]+$', name)
        if not m or name.startswith('student'): continue
        per[m.group(1)] = max(per.get(m.group(1), -1), float(r[h.index('recall@10')]))
    for k, v in per.items(): best[k].append(v)
for k, v in sorted(best.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
    print('%-10s mean valid Recall@10 at each seed\'s chosen knob %.4f (%d seeds)' % (k, sum(v) / len(v), len(v)))
