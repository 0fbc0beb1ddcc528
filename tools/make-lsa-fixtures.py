#!/usr/bin/python3
"""Fixtures for test/lsa.test.ts: SciPy's linear_sum_assignment on matrices with many optimal
assignments, so that the test checks the choice among ties, not only the optimum.

  apt-get install -y --no-install-recommends python3-scipy
  /usr/bin/python3 tools/make-lsa-fixtures.py
      # writes test/fixtures/lsa/lsa_ties.json and test/fixtures/lsa/cluster_naming.json

Each case: {"name", "n", "m", "maximize", "cost" (row-major, n*m numbers), "row_ind", "col_ind"},
where row_ind/col_ind are exactly what scipy.optimize.linear_sum_assignment(cost, maximize) returned.
Cases with "reference": true are the reference's call in utils/cluster.py: the matrix stored in
"cost" is the co-occurrence count matrix M, and row_ind/col_ind are linear_sum_assignment(N - M)
with N = M.sum() (the reference passes the number of samples), minimising.

Families: small integers 0..3 (square, wide, tall; sizes 1..25), sparse counts with all-zero rows
and columns, all-zero and constant matrices, a single nonzero entry, +inf (forbidden) entries,
floats (uniform, normal, and multiples of 0.1 whose sums round), and cluster × class count matrices
built from random labels with empty clusters, as the reference sees them.
"""
import json
import os
from collections import Counter

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "lsa", "lsa_ties.json")
rng = np.random.default_rng(20260323)
cases = []


def num(x):
    x = float(x)
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 2**53:
        return int(x)
    return x  # json writes repr(): round-trips exactly to the same double


def add(name, cost, maximize=False, reference=False):
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if reference:
        r, c = linear_sum_assignment(cost.sum() - cost)
    else:
        r, c = linear_sum_assignment(cost, maximize=maximize)
    case = {"name": name, "n": int(n), "m": int(m), "maximize": bool(maximize),
            "cost": [num(x) for x in cost.ravel()], "row_ind": [int(x) for x in r], "col_ind": [int(x) for x in c]}
    if reference:
        case["reference"] = True
    cases.append(case)


def shape(lo=1, hi=25):
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


# 1. small integers 0..3, all shapes, both senses
for t in range(240):
    if t < 80:
        n = int(rng.integers(1, 26)); m = n
    elif t < 160:
        n, m = sorted(shape()); n, m = (n, m) if t % 2 else (m, n)
    else:
        n, m = shape()
    add(f"int03-{t}", rng.integers(0, 4, size=(n, m)), maximize=bool(t % 3 == 1))

# 2. binary / very low entropy matrices (the hardest tie structure)
for t in range(60):
    n, m = shape(1, 20)
    p = [0.2, 0.5, 0.8][t % 3]
    add(f"binary-{t}", (rng.random((n, m)) < p).astype(float), maximize=bool(t % 2))

# 3. sparse counts with all-zero rows and columns
for t in range(80):
    n, m = shape(2, 25)
    a = rng.integers(0, 4, size=(n, m)) * (rng.random((n, m)) < 0.3)
    zr = rng.random(n) < 0.3
    zc = rng.random(m) < 0.3
    a[zr, :] = 0
    a[:, zc] = 0
    add(f"zero-rows-cols-{t}", a, maximize=bool(t % 2 == 0))

# 4. all-zero, constant, single nonzero entry, identity-like
for n, m in [(1, 1), (1, 5), (5, 1), (3, 3), (4, 7), (7, 4), (20, 20), (25, 25), (12, 25), (25, 12)]:
    add(f"all-zero-{n}x{m}", np.zeros((n, m)))
    add(f"all-zero-max-{n}x{m}", np.zeros((n, m)), maximize=True)
    add(f"constant-{n}x{m}", np.full((n, m), 2.0), maximize=True)
    a = np.zeros((n, m)); a[int(rng.integers(0, n)), int(rng.integers(0, m))] = 3
    add(f"single-{n}x{m}", a, maximize=True)
    add(f"single-min-{n}x{m}", a)

# 5. forbidden pairs (+inf when minimising), always feasible: the diagonal is kept finite
for t in range(20):
    n, m = shape(2, 12)
    a = rng.integers(0, 4, size=(n, m)).astype(float)
    mask = rng.random((n, m)) < 0.3
    for k in range(min(n, m)):
        mask[k, k] = False
    a[mask] = np.inf
    add(f"inf-{t}", a)

# 6. floats: uniform, normal, multiples of 0.1 (sums that round), large magnitudes
for t in range(60):
    n, m = shape(1, 15)
    kind = t % 4
    if kind == 0:
        a = rng.random((n, m))
    elif kind == 1:
        a = rng.normal(size=(n, m)) * 10
    elif kind == 2:
        a = rng.integers(0, 10, size=(n, m)) * 0.1
    else:
        a = rng.integers(0, 4, size=(n, m)) * 1e6 + rng.integers(0, 3, size=(n, m)) * 0.3
    add(f"float{kind}-{t}", a, maximize=bool(t % 2))

# 7. the reference's call: counts M of (cluster, class) from random labels, linear_sum_assignment(N - M)
for t in range(120):
    k = [20, 20, 20, 5, 8, 12, 25][t % 7]
    c = k if t % 5 else int(rng.integers(max(1, k - 4), k + 5))  # mostly square as in the reference
    samples = int(rng.integers(1, 6 * k))
    used = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)  # empty clusters
    clusters = rng.choice(used, size=samples)
    targets = np.where(rng.random(samples) < 0.5, clusters % c, rng.integers(0, c, size=samples))
    counts = np.zeros((k, c))
    np.add.at(counts, (clusters, targets), 1)
    add(f"reference-counts-{t}", counts, reference=True)
    if t % 3 == 0:
        add(f"counts-max-{t}", counts, maximize=True)

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases}, f, separators=(",", ":"))
    f.write("\n")
print(f"{len(cases)} cases -> {OUT} ({os.path.getsize(OUT)} bytes)")


# cluster_naming.json: the naming steps of the reference's utils/cluster.py on per-mask labels
# (cluster id from K-means, target = class index), written out step by step here:
#  - targets renumbered 0..U-1 over the classes that occur (np.unique order);
#  - clusters == classes: counts[c1, c2] over num_k x num_k (num_k = number of clusters), then
#    linear_sum_assignment(num_samples - counts); cluster out_c takes the class of renumbered id gt_c
#    (a KeyError in the reference when gt_c >= U and the cluster has samples: "fails");
#  - more clusters than classes: for each cluster that occurs, Counter(its targets).most_common()[0].
# "names": for each cluster, its class, or null where the reference gives none (empty cluster,
# or a cluster whose renumbered id has no class). "plain": what linear_sum_assignment(N - counts)
# on the counts over all classes (no renumbering) would have given, to show the fixture tells
# the two apart.
def reference_names(clusters, targets, k, c):
    uniq = np.unique(targets)
    to_id = {int(v): i for i, v in enumerate(uniq)}
    ids = np.array([to_id[int(x)] for x in targets])
    names = [None] * k
    fails = False
    if k == c:
        counts = np.zeros((k, k))
        for c1 in range(k):
            for c2 in range(k):
                counts[c1, c2] = int(((clusters == c1) * (ids == c2)).sum())
        rows, cols = linear_sum_assignment(len(targets) - counts)
        for out_c, gt_c in zip(rows, cols):
            if (clusters == out_c).any():
                if gt_c < len(uniq):
                    names[int(out_c)] = int(uniq[gt_c])
                else:
                    fails = True
        full = np.zeros((k, c))
        np.add.at(full, (clusters, targets), 1)
        pr, pc = linear_sum_assignment(len(targets) - full)
        plain = [None] * k
        for out_c, gt_c in zip(pr, pc):
            if (clusters == out_c).any():
                plain[int(out_c)] = int(gt_c)
    else:
        for c1 in np.unique(clusters):
            c2, _ = Counter(ids[clusters == c1]).most_common()[0]
            names[int(c1)] = int(uniq[c2])
        plain = [None] * k  # lowest class index among the most frequent
        for c1 in np.unique(clusters):
            row = np.bincount(targets[clusters == c1], minlength=c)
            plain[int(c1)] = int(np.argmax(row))
    return names, fails, plain


naming = []
for t in range(150):
    c = [20, 20, 20, 80, 5, 8][t % 6]
    over = 1 if t < 100 else int(rng.integers(2, 4))
    k = c * over
    samples = int(rng.integers(max(2, k // 2), 4 * c + 1))
    present = rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False)  # classes that occur
    targets = rng.choice(present, size=samples)
    # empty clusters; mostly no more non-empty clusters than occurring classes (else the reference fails)
    most = k if over > 1 or t % 10 == 0 else len(present)
    used = rng.choice(k, size=int(rng.integers(1, most + 1)), replace=False)
    clusters = np.where(rng.random(samples) < 0.4, used[targets % len(used)], rng.choice(used, size=samples))
    names, fails, plain = reference_names(clusters, targets, k, c)
    naming.append({"name": f"naming-{t}", "clusters": clusters.tolist(), "targets": targets.tolist(),
                   "n_clusters": k, "n_classes": c, "names": names, "fails": fails, "plain_differs": plain != names})

OUT2 = os.path.join(os.path.dirname(OUT), "cluster_naming.json")
with open(OUT2, "w") as f:
    json.dump({"scipy": scipy.__version__, "numpy": np.__version__, "cases": naming}, f, separators=(",", ":"))
    f.write("\n")
print(f"{len(naming)} naming cases ({sum(x['fails'] for x in naming)} where the reference fails, "
      f"{sum(x['plain_differs'] and not x['fails'] for x in naming)} others where matching without renumbering differs) -> {OUT2} "
      f"({os.path.getsize(OUT2)} bytes)")
