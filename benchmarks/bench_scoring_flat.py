"""Worst case of candidate scoring: flat P (an untrained model), where the
bound can never settle a sample and every one is scored exactly.

    .venv/bin/python benchmarks/bench_scoring_flat.py
"""
import time, numba, numpy as np
from threadpoolctl import threadpool_limits
from skmach._hashing import UniversalHashFamily
from skmach._kernels._mach_scoring import stack_inverted
from skmach.mach._scoring import topk_classes
numba.set_num_threads(1)
K, B, R, n = 24288, 1024, 8, 2000
fam = UniversalHashFamily(K, B, R, np.random.default_rng(0), distinct=False)
inv = stack_inverted([fam.inverted_index(r) for r in range(R)])
P = np.full((n, R, B), 1 / B, dtype=np.float32)
with threadpool_limits(1):
    for c in (None, 8):
        topk_classes(P[:8], fam, K, 5, n_candidate_buckets=c, inverted=inv)
        w, t = time.perf_counter(), time.process_time()
        idx, val, fb = topk_classes(P, fam, K, 5, n_candidate_buckets=c, inverted=inv, n_jobs=1, return_fallback=True)
        print(f"flat P, mean, c={c}: wall {time.perf_counter()-w:.2f} s, CPU {time.process_time()-t:.2f} s, fallback {fb.mean():.3f}")
