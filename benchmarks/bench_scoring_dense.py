"""Dense class scores (decision_function / predict_proba path): compiled vs NumPy.

    .venv/bin/python benchmarks/bench_scoring_dense.py
"""
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from skmach._hashing import UniversalHashFamily
from skmach.mach._scoring import _class_scores_numpy, class_scores

K, B, R, n = 24288, 1024, 8, 1000
fam = UniversalHashFamily(K, B, R, np.random.default_rng(0), distinct=False)
P = np.random.default_rng(1).dirichlet(np.ones(B), size=(n, R)).astype(np.float32)
classes = np.arange(K)
class_scores(P[:4], fam, classes)
with threadpool_limits(1):
    for t in (1, 2):
        numba.set_num_threads(t)
        for agg in ("mean", "logmean"):
            w, c = time.perf_counter(), time.process_time()
            a = class_scores(P, fam, classes, agg, n_jobs=t)
            print(f"{agg} compiled, {t} thread(s): wall {time.perf_counter() - w:.2f} s, "
                  f"CPU {time.process_time() - c:.2f} s")
            if t == 1:
                w, c = time.perf_counter(), time.process_time()
                b = _class_scores_numpy(P, fam, classes, agg)
                print(f"{agg} NumPy, 1 thread: wall {time.perf_counter() - w:.2f} s, "
                      f"CPU {time.process_time() - c:.2f} s, identical: {bool((a == b).all())}")
