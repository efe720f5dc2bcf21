"""MACH with up to 10 million classes on one machine (synthetic data).

For each number of classes K, in a fresh process: generate a long-tailed
problem (``make_extreme_classification``), fit MACHClassifier, then predict
the top 5 classes of held-out samples exactly (all K classes scored, in
blocks) and with sublinear candidate scoring (only the classes in each
repetition's ``--candidate-buckets`` best buckets). Peak memory is measured
separately for the fit and for prediction (the kernel's peak-RSS counter is
reset after the data are generated), so the data set's own size is not
counted. Recall is the fraction of the exact top-5 that candidate scoring
returns.

Usage::

    python benchmarks/bench_scale.py [--classes 10000 100000 1000000 10000000]
"""

import argparse
import gc
import time

import numpy as np

from _common import (command_line, machine, markdown_table, proc_status_mb, run_isolated,
                     write_results)


def _reset_peak():
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def run_one(K, args):
    from skmach import MACHClassifier
    from skmach.datasets import make_extreme_classification

    n = args.n_train + args.n_test
    X, y = make_extreme_classification(n_samples=n, n_features=args.n_features, n_classes=K,
                                       n_informative_per_class=5, nnz_per_sample=20, noise=0.2,
                                       random_state=0)
    Xtr, ytr, Xte, yte = X[:args.n_train], y[:args.n_train], X[args.n_train:], y[args.n_train:]
    classes = np.arange(K)  # every class, seen in training or not
    del X, y
    _reset_peak()
    base = proc_status_mb("VmRSS")
    clf = MACHClassifier(n_buckets=args.buckets, n_repetitions=args.repetitions,
                         n_epochs=args.epochs, n_jobs=2, random_state=0)
    t = time.perf_counter()
    clf.partial_fit(Xtr, ytr, classes=classes)  # all K classes, as in production
    for _ in range(args.epochs - 1):
        clf.partial_fit(Xtr, ytr)
    fit_s = time.perf_counter() - t
    fit_peak = proc_status_mb("VmHWM") - base
    model_mb = (sum(a.nbytes for a in clf.coefs_) + clf.hash_family_.a.nbytes * 2) / 2**20
    classes_mb = clf.classes_.nbytes / 2**20

    n_exact = min(len(yte), args.n_exact if K >= 10**7 else len(yte))
    _reset_peak()
    base = proc_status_mb("VmRSS")
    t = time.perf_counter()
    exact, _ = clf.predict_topk(Xte[:n_exact], 5)
    exact_s = (time.perf_counter() - t) / n_exact
    exact_peak = proc_status_mb("VmHWM") - base

    clf.set_params(n_candidate_buckets=args.candidate_buckets)
    _reset_peak()
    base = proc_status_mb("VmRSS")
    t = time.perf_counter()
    clf.predict_topk(Xte[:1], 5)  # builds the inverted index once
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    approx, _ = clf.predict_topk(Xte, 5)
    cand_s = (time.perf_counter() - t) / len(yte)
    cand_peak = proc_status_mb("VmHWM") - base
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx[:n_exact], exact)])
    return {
        "n_classes": K, "fit_s": fit_s, "fit_peak_mb": fit_peak, "model_mb": model_mb,
        "classes_mb": classes_mb, "exact_ms_per_sample": 1e3 * exact_s,
        "exact_peak_mb": exact_peak, "candidate_ms_per_sample": 1e3 * cand_s,
        "index_build_s": index_s, "candidate_peak_mb": cand_peak,
        "speedup": exact_s / cand_s, "recall@5_of_exact": recall,
        "P@1_exact": float(np.mean(exact[:, 0] == yte[:n_exact])),
        "P@1_candidates": float(np.mean(approx[:, 0] == yte)),
        "n_exact_samples": n_exact,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--classes", type=int, nargs="+", default=[10**4, 10**5, 10**6, 10**7])
    ap.add_argument("--n-train", type=int, default=100_000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-exact", type=int, default=200, help="exactly scored samples at 10M")
    ap.add_argument("--n-features", type=int, default=4096)
    ap.add_argument("--buckets", type=int, default=1024)
    ap.add_argument("--repetitions", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--candidate-buckets", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for K in args.classes:
        print(f"K={K} ...", flush=True)
        out = run_isolated(run_one, K, args)
        out.setdefault("n_classes", K)
        print("  ", out, flush=True)
        rows.append(out)
    cols = [("n_classes", "{:,}"), ("fit_s", "{:.1f}"), ("fit_peak_mb", "{:.0f}"),
            ("model_mb", "{:.1f}"), ("classes_mb", "{:.1f}"),
            ("exact_ms_per_sample", "{:.2f}"), ("exact_peak_mb", "{:.0f}"),
            ("candidate_ms_per_sample", "{:.2f}"), ("candidate_peak_mb", "{:.0f}"),
            ("index_build_s", "{:.1f}"), ("speedup", "{:.1f}"),
            ("recall@5_of_exact", "{:.3f}"), ("P@1_exact", "{:.3f}"), ("P@1_candidates", "{:.3f}")]
    md = (f"# MACH with millions of classes (synthetic)\n\nCommand: `{command_line()}`\n\n"
          f"Machine: {machine()}\n\n"
          f"{args.n_train:,} training samples, {args.n_features} sparse features (20 per sample), "
          f"B={args.buckets}, R={args.repetitions}, {args.epochs} epochs, 2 jobs. Peak memory is "
          "the growth of the resident set during the step (the data set itself excluded). "
          "`classes_mb` is the label encoding `classes_` (one int64 per class), the only array "
          "of the fitted model whose size depends on K; the model's weights (`model_mb`) do not. "
          f"Candidate scoring takes the {args.candidate_buckets} best buckets of each repetition; "
          "the inverted index it needs (R int32 per class) is built on first use "
          "(`index_build_s`) and counted in `candidate_peak_mb`.\n\n"
          + markdown_table(rows, cols))
    write_results("scale_synthetic", {"command": command_line(), "machine": machine(),
                                      "rows": rows}, md)


if __name__ == "__main__":
    main()
