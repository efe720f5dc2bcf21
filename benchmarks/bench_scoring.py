"""MACH scoring: compiled exact vs compiled candidate vs the old NumPy path.

P is what a trained MACH model gives: a peaked class distribution (softmax
of Gaussian logits times ``--scale``) pushed through each repetition's hash,
with per-repetition log-normal noise (``--noise``) so that the repetitions
disagree a little. Threads are pinned: BLAS through threadpoolctl, Numba
through ``numba.set_num_threads``. CPU seconds (process time, all threads)
are recorded beside wall seconds because the machine is shared.

    .venv/bin/python benchmarks/bench_scoring.py --classes 24288 --buckets 1024 \
        --samples 20000 --threads 1 2

Writes nothing; paste the printed table into benchmarks/results/scoring.md.
"""

import argparse
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from skmach._hashing import UniversalHashFamily
from skmach._kernels._mach_scoring import stack_inverted
from skmach.mach._scoring import topk_classes


def peaked_P(fam, n, scale, noise, rng, chunk=512):
    K, R, B = fam.n_classes, fam.n_repetitions, fam.n_buckets
    P = np.empty((n, R, B), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        z = rng.standard_normal((e - s, K), dtype=np.float32) * scale
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        for r in range(R):
            h = fam(np.arange(K), rep=r).astype(np.int64)
            # P[:, r, b] = sum of q over the classes of bucket b
            Pr = np.zeros((e - s, B), dtype=np.float64)
            for i in range(e - s):
                Pr[i] = np.bincount(h, weights=q[i], minlength=B)
            Pr *= np.exp(noise * rng.standard_normal(Pr.shape))
            P[s:e, r] = Pr / Pr.sum(axis=1, keepdims=True)
    return P


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=24288)
    ap.add_argument("--buckets", type=int, default=1024)
    ap.add_argument("--repetitions", type=int, default=8)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--scale", type=float, default=3.0)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--cands", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--aggregations", nargs="+", default=["mean", "logmean", "min"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--numpy-samples", type=int, default=None,
                    help="rows timed for the old NumPy path (scaled to --samples)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    fam = UniversalHashFamily(args.classes, args.buckets, args.repetitions, rng, distinct=False)
    (P, w, _) = timed(lambda: peaked_P(fam, args.samples, args.scale, args.noise, rng))
    inv = stack_inverted([fam.inverted_index(r) for r in range(args.repetitions)])
    top1 = np.sort(P, axis=2)[:, :, ::-1]
    print(f"K={args.classes} B={args.buckets} R={args.repetitions} n={args.samples} "
          f"k={args.k}; P made in {w:.0f} s; mean top-1/top-8 bucket mass "
          f"{top1[..., 0].mean():.3f}/{top1[..., :8].sum(-1).mean():.3f}")
    # compile once outside the timings
    topk_classes(P[:64], fam, args.classes, args.k, "mean")
    topk_classes(P[:64], fam, args.classes, args.k, "mean", n_candidate_buckets=4, inverted=inv)
    print("| aggregation | method | threads | wall s | CPU s | fallback | same top-k as exact |")
    print("|---|---|---|---|---|---|---|")
    n_np = args.numpy_samples or args.samples
    for agg in args.aggregations:
        for t in args.threads:
            numba.set_num_threads(t)
            with threadpool_limits(t):
                (ref, w, c) = timed(lambda: topk_classes(P, fam, args.classes, args.k, agg,
                                                         n_jobs=t))
                print(f"| {agg} | exact | {t} | {w:.2f} | {c:.2f} | - | - |", flush=True)
                for cb in args.cands:
                    (res, w, c) = timed(lambda: topk_classes(
                        P, fam, args.classes, args.k, agg, n_candidate_buckets=cb,
                        inverted=inv, n_jobs=t, return_fallback=True))
                    same = bool((res[0] == ref[0]).all())
                    print(f"| {agg} | candidates c={cb} | {t} | {w:.2f} | {c:.2f} | "
                          f"{res[2].mean():.4f} | {same} |", flush=True)
                if t == 1 or len(args.threads) == 1:
                    (res, w, c) = timed(lambda: topk_classes(
                        P[:n_np], fam, args.classes, args.k, agg, method="numpy",
                        working_memory_mb=1024))
                    same = bool((res[0] == ref[0][:n_np]).all())
                    f = args.samples / n_np
                    note = f" (timed on {n_np} rows, x{f:g})" if n_np != args.samples else ""
                    print(f"| {agg} | old NumPy{note} | {t} | {w * f:.2f} | {c * f:.2f} | - | "
                          f"{same} |", flush=True)


if __name__ == "__main__":
    main()
