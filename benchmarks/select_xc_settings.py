"""How MACH's bibtex and delicious settings (``bench_xc.MACH_SETTINGS``) were chosen.

Each candidate is trained on the first 80% of the data set's training file and
scored (P@1, P@5) on the last 20%: the test file is never looked at. The
defaults (``MACHClassifier()``, all sizes ``"auto"``) are scored the same way.
Every thread pool pinned to ``--threads``.

Usage::

    python benchmarks/select_xc_settings.py [--datasets bibtex delicious] [--threads 2] \\
        [--candidates JSON] [--name xc_settings]
"""

import argparse

from _common import (DEFAULT_DATA, command_line, machine, markdown_table, pin_threads,
                     timed_cpu, write_results)

CANDIDATES = {
    "bibtex": [
        dict(),  # the defaults
        dict(n_buckets=32, n_repetitions=16, hidden_layer_size=0, learning_rate=0.1,
             n_epochs=5),  # the previous recorded setting (linear)
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=256,
             n_epochs=3),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=128,
             n_epochs=5),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=0,
             learning_rate=0.1, n_epochs=5),
        dict(loss="softmax", n_buckets=32, n_repetitions=16, hidden_layer_size=0,
             learning_rate=0.1, n_epochs=5),
        # the defaults with one size changed
        dict(loss="softmax", n_buckets=64, n_repetitions=32, hidden_layer_size=256,
             n_epochs=5),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=256,
             n_epochs=5, batch_size=128),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=256,
             n_epochs=3, batch_size=128),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=128,
             n_epochs=3, batch_size=128),
        dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=64,
             n_epochs=3, batch_size=64),
    ],
    "delicious": [
        dict(),
        dict(n_buckets=64, n_repetitions=16, hidden_layer_size=0, learning_rate=0.05,
             n_epochs=5),  # the previous recorded setting (linear)
        dict(n_buckets=128, n_repetitions=16, hidden_layer_size=256, n_epochs=5),
        dict(n_buckets=256, n_repetitions=16, hidden_layer_size=128, n_epochs=5),
    ],
}


def main():
    from bench_xc import load

    from skmach import MACHClassifier
    from skmach.metrics import precision_at_k

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--datasets", nargs="+", default=list(CANDIDATES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", default=None,
                    help="JSON object {data set: [settings, ...]} replacing CANDIDATES")
    ap.add_argument("--name", default="xc_settings")
    args = ap.parse_args()
    candidates = CANDIDATES
    if args.candidates:
        import json

        candidates = json.loads(args.candidates)
    pin_threads(args.threads)
    rows = []
    for name in args.datasets:
        Xtr, Ytr, _, _ = load(args.data, name)
        n_val = Xtr.shape[0] // 5
        X, Y, Xv, Yv = Xtr[:-n_val], Ytr[:-n_val], Xtr[-n_val:], Ytr[-n_val:]
        for cand in candidates[name]:
            clf = MACHClassifier(**cand, n_jobs=args.threads, random_state=0)
            _, fit_s, fit_cpu = timed_cpu(clf.fit, X, Y)
            top, _ = clf.predict_topk(Xv, 5)
            rows.append({"dataset": name, "settings": str(cand) if cand else "defaults",
                         "resolved": f"B={clf.n_buckets_} R={clf.n_repetitions_} "
                                     f"H={clf.hidden_layer_size_} E={clf.n_epochs_} "
                                     f"{clf._loss}",
                         "fit_s": fit_s, "fit_cpu_s": fit_cpu,
                         "P@1": precision_at_k(Yv, top, k=1),
                         "P@5": precision_at_k(Yv, top, k=5)})
            print(rows[-1], flush=True)
    cols = [("dataset", None), ("settings", None), ("resolved", None), ("fit_s", "{:.2f}"),
            ("fit_cpu_s", "{:.2f}"), ("P@1", "{:.3f}"), ("P@5", "{:.3f}")]
    md = (f"# XC data sets: choosing MACH's settings on training data\n\n"
          f"Command: `{command_line()}`\n\nMachine: {machine()}\n\n"
          f"Fit on the first 80% of each training file, scored on the last 20% (the test "
          f"file is not used); {args.threads} threads, every pool pinned.\n\n"
          + markdown_table(rows, cols))
    write_results(args.name, {"command": command_line(), "rows": rows}, md)


if __name__ == "__main__":
    main()
