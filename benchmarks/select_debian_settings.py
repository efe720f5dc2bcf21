"""How MACH's debian-paths settings (``bench_debian.MACH_DEBIAN``) were chosen.

Each candidate is trained on the first ``--n-fit`` training paths and scored
(P@1, P@5) on the last ``--n-val`` training paths, so the test file is never
looked at. Features: the cached featurisation of ``bench_debian.py`` (run it
once first, or this script featurises the whole set itself).

Usage::

    python benchmarks/select_debian_settings.py [--n-fit 100000] [--n-val 20000]
"""

import argparse
import time

from _common import DEFAULT_DATA, command_line, machine, markdown_table, write_results

COMMON = dict(n_epochs=2, batch_size=512, loss="softmax", n_candidate_buckets=10)
CANDIDATES = [
    dict(n_buckets=1024, n_repetitions=8, hidden_layer_size=64, learning_rate=0.02),
    dict(n_buckets=1024, n_repetitions=8, hidden_layer_size=64, learning_rate=0.01),
    dict(n_buckets=1024, n_repetitions=8, hidden_layer_size=128, learning_rate=0.01),
    dict(n_buckets=512, n_repetitions=16, hidden_layer_size=64, learning_rate=0.01),
]


def main():
    from bench_debian import load_debian

    from skmach import MACHClassifier
    from skmach.metrics import precision_at_k

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--n-fit", type=int, default=100_000)
    ap.add_argument("--n-val", type=int, default=20_000)
    args = ap.parse_args()
    Xtr, Ytr, _, _ = load_debian(args.data, 1_198_250, 299_562, 2**16)
    X, Y = Xtr[:args.n_fit], Ytr[:args.n_fit]
    Xv, Yv = Xtr[-args.n_val:], Ytr[-args.n_val:]
    rows = []
    for cand in CANDIDATES:
        clf = MACHClassifier(**cand, **COMMON, n_jobs=2, random_state=0)
        t = time.perf_counter()
        clf.fit(X, Y)
        fit_s = time.perf_counter() - t
        top, _ = clf.predict_topk(Xv, 5)
        rows.append({**cand, "fit_s": fit_s, "P@1": precision_at_k(Yv, top, k=1),
                     "P@5": precision_at_k(Yv, top, k=5)})
        print(rows[-1], flush=True)
    cols = [(k, None) for k in CANDIDATES[0]] + [("fit_s", "{:.1f}"), ("P@1", "{:.3f}"),
                                                 ("P@5", "{:.3f}")]
    md = (f"# debian-paths: choosing MACH's settings on training data\n\n"
          f"Command: `{command_line()}`\n\nMachine: {machine()}\n\n"
          f"Fit on the first {args.n_fit:,} training paths, scored on the last "
          f"{args.n_val:,} training paths (the test file is not used). Common settings: "
          f"{COMMON}.\n\n" + markdown_table(rows, cols))
    write_results("debian_settings", {"command": command_line(), "rows": rows}, md)


if __name__ == "__main__":
    main()
