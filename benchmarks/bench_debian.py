"""debian-paths: which Debian package ships this file path? (24,288 labels)

Paths are featurised once with ``HashingVectorizer(analyzer="char_wb",
ngram_range=(2, 4), n_features=--n-features)`` (cached under
``benchmarks/_cache``), and every system gets exactly those features:
MACHClassifier, napkinXC PLT, Omikuji and PECOS XR-Linear, each in its own
process with 2 threads. scikit-learn's one-vs-rest is not trained: its
memory is computed (one float64 weight per feature and class, as
``OneVsRestClassifier(LogisticRegression())`` stores it), which is what
MACH avoids.

Usage::

    python benchmarks/bench_debian.py [--n-train 1198250] [--n-test 299562]
        [--n-eval 50000] [--systems mach napkinxc omikuji pecos]

The recorded run (``benchmarks/results/debian_paths.md``) trains on all
training paths and scores the first 50,000 test paths (``--n-eval``):
Omikuji's per-path Python predict loop would take about 20 minutes on all
299,562.
"""

import argparse
from pathlib import Path

import numpy as np

from _common import (DEFAULT_DATA, command_line, machine, markdown_table, run_isolated,
                     write_results)

CACHE = Path(__file__).resolve().parent / "_cache"

# A hidden layer keeps the weights small: R * (d * H + H * B) floats,
# 4 * (65536 * 60 + 60 * 1024) = 16M here (61 MiB), against 24,288 * 65536
# for one-vs-rest. 99.3% of the paths have one package: the softmax loss of
# the MACH paper. Prediction uses the default exact candidate scoring
# (n_candidate_buckets="auto"). Chosen on the training file only: fit on
# its first 1,148,250 paths, P@1 on its last 50,000 (`select_debian_settings.py
# --n-fit 1148250 --n-val 50000`, results/debian_settings_full*.md): with the
# first layer at ~61 MiB (R * H = 240), R=4 x H=60 beat R=8 x 30, R=6 x 40 and
# R=3 x 80; a fourth epoch and a linearly decaying rate took it from 0.9725
# to 0.9800 (a fifth epoch at a constant rate: 0.9756), and minibatches of
# 1,024 kept 0.9801 at 0.85x the CPU time of 512.
MACH_DEBIAN = dict(n_buckets=1024, n_repetitions=4, hidden_layer_size=60, n_epochs=4,
                   learning_rate=0.02, learning_rate_schedule="linear", batch_size=1024,
                   loss="softmax")

def read_tsv(path, n):
    """The first ``n`` (texts, label lists) of a ``text<TAB>labels`` file."""
    from skmach.datasets import iter_tsv

    texts, labels = [], []
    for t, lab in iter_tsv(path, chunk_size=100_000):
        texts += t
        labels += lab
        if len(texts) >= n:
            break
    return texts[:n], labels[:n]


def load_debian(data, n_train, n_test, n_features, n_eval=None):
    """Featurised (X_train, Y_train, X_test, Y_test), cached as .npz.

    ``n_eval`` keeps the first ``n_eval`` test paths (the test file is in
    random order) from the cached ``n_test``.
    """
    out = _load_debian(data, n_train, n_test, n_features)
    if n_eval is not None and n_eval < n_test:
        out = out[:2] + tuple(M[:n_eval] for M in out[2:])
    return out


def _load_debian(data, n_train, n_test, n_features):
    import scipy.sparse as sp

    CACHE.mkdir(exist_ok=True)
    key = CACHE / f"debian_{n_train}_{n_test}_{n_features}"
    parts = ["Xtr", "Ytr", "Xte", "Yte"]
    if all((key.parent / f"{key.name}_{p}.npz").exists() for p in parts):
        return tuple(sp.load_npz(key.parent / f"{key.name}_{p}.npz").tocsr() for p in parts)
    from sklearn.feature_extraction.text import HashingVectorizer

    from skmach.datasets import labels_to_indicator

    root = Path(data) / "debian-paths"
    ttr, ltr = read_tsv(root / "train.tsv.xz", n_train)
    tte, lte = read_tsv(root / "test.tsv.xz", n_test)
    Ytr, classes = labels_to_indicator(ltr)
    Yte, _ = labels_to_indicator(lte, classes=classes)
    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=n_features,
                            alternate_sign=False, dtype=np.float32)
    Xtr, Xte = vec.transform(ttr), vec.transform(tte)
    out = (Xtr.tocsr(), Ytr.tocsr(), Xte.tocsr(), Yte.tocsr())
    for p, M in zip(parts, out):
        sp.save_npz(key.parent / f"{key.name}_{p}.npz", M)
    return out


def main():
    from bench_xc import SYSTEMS

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--n-train", type=int, default=1_198_250)
    ap.add_argument("--n-test", type=int, default=299_562)
    ap.add_argument("--n-features", type=int, default=2**16)
    ap.add_argument("--n-eval", type=int, default=None,
                    help="score on the first N test paths only (Omikuji's Python-level "
                         "predict takes ~3-5 ms per path)")
    ap.add_argument("--systems", nargs="+", default=["mach", "napkinxc", "pecos", "omikuji"])
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per system")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="debian_paths")
    ap.add_argument("--mach-settings", default=None,
                    help="JSON of MACHClassifier parameters that replace the recorded ones")
    args = ap.parse_args()
    mach_settings = dict(MACH_DEBIAN)
    if args.mach_settings:
        import json

        mach_settings.update(json.loads(args.mach_settings))
    spec = ("debian", args.n_train, args.n_test, args.n_features, args.n_eval)
    Xtr, Ytr, Xte, Yte = load_debian(args.data, *spec[1:])  # featurise once, here
    n_labels = Ytr.shape[1]
    ovr_gb = Xtr.shape[1] * n_labels * 8 / 2**30
    n_eval = Xte.shape[0]
    print(f"{Xtr.shape[0]} train / {Xte.shape[0]} test, {Xtr.shape[1]} features, "
          f"{n_labels} labels; one-vs-rest weights would take {ovr_gb:.1f} GiB", flush=True)
    del Xtr, Ytr, Xte, Yte
    header = (f"# debian-paths: MACH against the peers\n\nCommand: `{command_line()}`\n\n"
              f"Machine: {machine()}\n\n{args.n_train:,} training paths; scored on "
              f"{n_eval:,} of the {args.n_test:,} test paths, "
              f"{n_labels:,} labels (packages) seen in training, character 2-4-grams hashed "
              f"into {args.n_features:,} features. {args.threads} threads per system (every thread "
              f"pool pinned: threadpoolctl, Numba, OMP), one process each, "
              f"one after the other; peers with their default settings. MACH settings: "
              f"{mach_settings}. One-vs-rest is not trained: its row is the size of its float64 weights.\n\n")
    rows = []
    for key in args.systems:
        label, fn = SYSTEMS[key]
        print(f"{label} ...", flush=True)
        extra = (mach_settings,) if key == "mach" else ()
        out = run_isolated(fn, args.data, spec, args.threads, *extra, timeout=args.timeout,
                           threads=args.threads)
        out["system"] = label
        rows.append(out)
        print("  ", {k: v for k, v in out.items() if k != "trace"}, flush=True)
        # written after every system, so that a long run leaves what it has done
        write_table(args.name, header, rows, ovr_gb)


def write_table(name, header, rows, ovr_gb):
    rows = [dict(r) for r in rows]
    ref = next((r for r in rows if r["system"].startswith("skmach") and "fit_s" in r), None)
    pecos = next((r for r in rows if r["system"].startswith("PECOS") and "fit_s" in r), None)
    for r in rows:
        if ref and "fit_s" in r:
            r["fit_vs_mach"] = r["fit_s"] / ref["fit_s"]
            r["cpu_vs_mach"] = r["fit_cpu_s"] / ref["fit_cpu_s"]
        if pecos and "fit_s" in r:
            r["fit_vs_pecos"] = r["fit_s"] / pecos["fit_s"]
    rows.append({"system": "sklearn OneVsRest(LogisticRegression) (not run)",
                 "model_mb": ovr_gb * 1024})
    cols = [("system", None), ("fit_s", "{:.1f}"), ("fit_cpu_s", "{:.1f}"),
            ("predict_s", "{:.1f}"), ("predict_cpu_s", "{:.1f}"), ("P@1", "{:.3f}"),
            ("P@3", "{:.3f}"), ("P@5", "{:.3f}"), ("peak_rss_mb", "{:.0f}"),
            ("model_mb", "{:.0f}"), ("fit_vs_pecos", "{:.2f}"), ("fit_vs_mach", "{:.2f}"),
            ("cpu_vs_mach", "{:.2f}")]
    md = header + markdown_table(rows, cols)
    errors = [r for r in rows if "error" in r]
    if errors:
        md += "\nFailures:\n" + "".join(f"- {r['system']}: {r['error']}\n" for r in errors)
    write_results(name, {"command": command_line(), "machine": machine(), "rows": rows}, md)


if __name__ == "__main__":
    main()
