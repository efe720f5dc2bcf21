"""MACHClassifier against the peers on the XC data sets (bibtex, delicious).

Every system gets the same features (rows L2-normalised, as the shared data
README's reference table) and 2 threads, runs in its own process (peak RSS is
its own) and is scored by the same P@k code. Ratios are against MACH.

Usage::

    python benchmarks/bench_xc.py [--data ../shared/data] [--datasets bibtex delicious]
        [--systems mach ovr napkinxc omikuji pecos]
"""

import argparse
import tempfile
from pathlib import Path

import joblib
import numpy as np

from _common import (DEFAULT_DATA, command_line, machine, markdown_table, quiet_stderr,
                     run_isolated, timed, write_results)

# Settings of MACH per data set, chosen on the training data only (the best
# P@1 on the last 20% of the training file among the candidates of
# benchmarks/select_xc_settings.py, results/xc_settings.md).
MACH_SETTINGS = {
    "bibtex": dict(loss="softmax", n_buckets=64, n_repetitions=16, hidden_layer_size=256,
                   n_epochs=5, batch_size=128),
    "delicious": dict(loss="sigmoid", n_buckets=128, n_repetitions=16,
                      hidden_layer_size=256, n_epochs=5),
}


def load(data, name):
    """Train/test features and labels of a data set, the same for every system.

    ``name`` is an XC data set folder (bibtex, delicious), or a
    ``("debian", n_train, n_test, n_features)`` tuple: debian-paths featurised
    with character n-grams (see bench_debian.py), cached on first use.
    """
    if isinstance(name, tuple):
        from bench_debian import load_debian

        return load_debian(data, *name[1:])
    from sklearn.preprocessing import normalize

    from skmach.datasets import load_xc

    Xtr, Ytr = load_xc(Path(data) / name / f"{name}_train.txt")
    Xte, Yte = load_xc(Path(data) / name / f"{name}_test.txt")
    return normalize(Xtr), Ytr, normalize(Xte), Yte


def scores(Yte, top):
    from skmach.metrics import precision_at_k

    return {f"P@{k}": precision_at_k(Yte, top, k=k) for k in (1, 3, 5)}


def run_mach(data, name, threads, settings=None):
    from skmach import MACHClassifier

    settings = MACH_SETTINGS[name] if settings is None else settings
    Xtr, Ytr, Xte, Yte = load(data, name)
    clf = MACHClassifier(n_jobs=threads, random_state=0, **settings)
    _, fit_s = timed(clf.fit, Xtr, Ytr)
    (top, _), pred_s = timed(clf.predict_topk, Xte, 5)
    with tempfile.TemporaryDirectory() as d:  # the whole estimator, as peers save theirs
        joblib.dump(clf, Path(d) / "model.joblib")
        model_mb = _dir_mb(Path(d) / "model.joblib")
    return {"fit_s": fit_s, "predict_s": pred_s, "model_mb": model_mb, **scores(Yte, top),
            "settings": str(settings)}


def run_ovr(data, name, threads):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from skmach.utils import topk

    Xtr, Ytr, Xte, Yte = load(data, name)
    clf = OneVsRestClassifier(LogisticRegression(), n_jobs=threads)
    _, fit_s = timed(clf.fit, Xtr, Ytr)

    def pred():
        return topk(clf.decision_function(Xte), 5)[0]

    top, pred_s = timed(pred)
    size = sum(e.coef_.nbytes + e.intercept_.nbytes for e in clf.estimators_)
    return {"fit_s": fit_s, "predict_s": pred_s, "model_mb": size / 2**20, **scores(Yte, top),
            "settings": "LogisticRegression() defaults"}


def _dir_mb(path):
    """Size on disk of a saved model (file or folder), in MB."""
    path = Path(path)
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


def _padded(rows, k=5):
    top = np.full((len(rows), k), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        r = list(r)[:k]
        top[i, : len(r)] = r
    return top


def run_napkinxc(data, name, threads):
    from napkinxc.models import PLT

    Xtr, Ytr, Xte, Yte = load(data, name)
    ytr = [Ytr.indices[Ytr.indptr[i]:Ytr.indptr[i + 1]].tolist() for i in range(Ytr.shape[0])]
    with tempfile.TemporaryDirectory() as d:
        clf = PLT(d, threads=threads, seed=0)
        _, fit_s = timed(clf.fit, Xtr, ytr)
        pred, pred_s = timed(clf.predict, Xte, top_k=5)
        model_mb = _dir_mb(d)
    return {"fit_s": fit_s, "predict_s": pred_s, "model_mb": model_mb,
            **scores(Yte, _padded(pred)),
            "settings": "PLT defaults"}


def run_omikuji(data, name, threads):
    import omikuji

    from skmach.datasets import dump_xc

    quiet_stderr()  # Omikuji draws a progress bar per example
    Xtr, Ytr, Xte, Yte = load(data, name)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train.txt"
        dump_xc(path, Xtr, Ytr)  # the same normalised features, in Omikuji's input format
        del Xtr, Ytr  # Omikuji reads its own copy from the file

        def fit():
            return omikuji.Model.train_on_data(str(path), omikuji.Model.default_hyper_param(),
                                               n_threads=threads)

        model, fit_s = timed(fit)
        model.save(str(Path(d) / "model"))
        model_mb = _dir_mb(Path(d) / "model")

    def pred():
        rows = []
        Xc = Xte.tocsr()
        for i in range(Xc.shape[0]):
            s, e = Xc.indptr[i], Xc.indptr[i + 1]
            feats = list(zip(Xc.indices[s:e].tolist(), Xc.data[s:e].tolist()))
            rows.append([lab for lab, _ in model.predict(feats, top_k=5)])
        return rows

    model.init_prediction_thread_pool(threads)
    rows, pred_s = timed(pred)
    return {"fit_s": fit_s, "predict_s": pred_s, "model_mb": model_mb,
            **scores(Yte, _padded(rows)),
            "settings": "Parabel-like defaults"}


def run_pecos(data, name, threads):
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    Xtr, Ytr, Xte, Yte = load(data, name)
    Xtr, Xte = Xtr.astype(np.float32).tocsr(), Xte.astype(np.float32).tocsr()
    Ytr = Ytr.astype(np.float32).tocsr()

    def fit():
        feat = LabelEmbeddingFactory.create(Ytr, Xtr, method="pifa")
        chain = Indexer.gen(feat, threads=threads)
        return XLinearModel.train(Xtr, Ytr, C=chain, threads=threads)

    model, fit_s = timed(fit)
    P, pred_s = timed(model.predict, Xte, only_topk=5, threads=threads)
    with tempfile.TemporaryDirectory() as d:
        model.save(str(Path(d) / "model"))
        model_mb = _dir_mb(Path(d) / "model")
    P = P.tocsr()
    rows = []
    for i in range(P.shape[0]):
        s, e = P.indptr[i], P.indptr[i + 1]
        order = np.argsort(-P.data[s:e], kind="stable")
        rows.append(P.indices[s:e][order].tolist())
    return {"fit_s": fit_s, "predict_s": pred_s, "model_mb": model_mb,
            **scores(Yte, _padded(rows)), "settings": "XR-Linear defaults (PIFA + hierarchical k-means)"}


SYSTEMS = {
    "mach": ("skmach MACHClassifier", run_mach),
    "ovr": ("sklearn OneVsRest(LogisticRegression)", run_ovr),
    "napkinxc": ("napkinXC PLT", run_napkinxc),
    "omikuji": ("Omikuji (Parabel)", run_omikuji),
    "pecos": ("PECOS XR-Linear", run_pecos),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--datasets", nargs="+", default=["bibtex", "delicious"])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="xc_peers")
    args = ap.parse_args()
    if not (Path(args.data) / args.datasets[0]).exists():
        raise SystemExit(f"data not found under {args.data}; pass --data")
    rows = []
    for ds in args.datasets:
        ref = None
        for key in args.systems:
            label, fn = SYSTEMS[key]
            print(f"[{ds}] {label} ...", flush=True)
            out = run_isolated(fn, args.data, ds, args.threads, threads=args.threads)
            out.update(dataset=ds, system=label)
            if "error" in out:
                print("   failed:", out["error"])
            if key == "mach":
                ref = out
            if ref and "fit_s" in out and "fit_s" in ref:
                out["fit_vs_mach"] = out["fit_s"] / ref["fit_s"]
            rows.append(out)
            print("  ", {k: v for k, v in out.items() if k not in ("trace",)}, flush=True)
    cols = [("dataset", None), ("system", None), ("fit_s", "{:.2f}"), ("fit_cpu_s", "{:.2f}"),
            ("predict_s", "{:.2f}"), ("predict_cpu_s", "{:.2f}"), ("P@1", "{:.3f}"), ("P@3", "{:.3f}"), ("P@5", "{:.3f}"), ("peak_rss_mb", "{:.0f}"),
            ("model_mb", "{:.1f}"), ("fit_vs_mach", "{:.2f}")]
    md = (f"# MACH against the peers on XC data sets\n\nCommand: `{command_line()}`\n\n"
          f"Machine: {machine()}\n\n"
          "Same features for every system (rows L2-normalised), 2 threads each, one process "
          "per system (peak RSS includes the interpreter and the data), every thread pool "
          "pinned (threadpoolctl, Numba, OMP). CPU seconds are the process's, all threads. "
          "`fit_vs_mach` is the system's fit time divided by MACH's in the same run.\n\n"
          + markdown_table(rows, cols)
          + "\nMACH settings: " + "; ".join(f"{k}: {v}" for k, v in MACH_SETTINGS.items()) + "\n")
    errors = [r for r in rows if "error" in r]
    if errors:
        md += "\nFailures:\n" + "".join(f"- {r['dataset']} {r['system']}: {r['error']}\n" for r in errors)
    write_results(args.name, {"command": command_line(), "machine": machine(), "rows": rows}, md)


if __name__ == "__main__":
    main()
