"""``make demo``: MACH on the embedded data set, beside one-vs-rest."""

import time

import numpy as np


def model_nbytes(model):
    """Bytes held by the fitted arrays of a model (weights, hash tables)."""
    from .mach import MACHClassifier

    if isinstance(model, MACHClassifier):
        arrays = list(model.coefs_ or []) + [model.hash_family_.a, model.hash_family_.b]
        arrays += [getattr(model.hash_family_, "table", np.empty(0))]
        return int(sum(a.nbytes for a in arrays))
    total = 0
    for est in getattr(model, "estimators_", [model]):
        for name in ("coef_", "intercept_"):
            a = getattr(est, name, None)
            if a is not None:
                total += np.asarray(a).nbytes
    return total


def run_demo(n_jobs=2, random_state=0, out=print):
    """Fit MACH and a one-vs-rest logistic regression on the demo data and report."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from .datasets import load_demo
    from .mach import MACHClassifier
    from .metrics import make_topk_scorer

    X_train, X_test, y_train, y_test = load_demo()
    classes = np.unique(y_train)
    out(
        f"demo data: {X_train.shape[0]} train / {X_test.shape[0]} test samples, "
        f"{X_train.shape[1]} sparse features, {len(classes)} classes (long-tailed)"
    )
    rows = []
    models = [
        ("MACHClassifier(B=16, R=12)", MACHClassifier(
            n_buckets=16, n_repetitions=12, n_jobs=n_jobs, random_state=random_state)),
        ("OneVsRest(LogisticRegression)", OneVsRestClassifier(
            LogisticRegression(max_iter=200), n_jobs=n_jobs)),
    ]
    for name, model in models:
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p5 = make_topk_scorer("precision", k=5)(model, X_test, y_test)
        pred_s = time.perf_counter() - t0
        # a test label never seen in training counts as a miss
        p1 = make_topk_scorer("precision", k=1)(model, X_test, y_test)
        rows.append((name, p1, p5, fit_s, pred_s, model_nbytes(model)))
    out(f"{'model':32s} {'P@1':>6s} {'P@5':>6s} {'fit s':>7s} {'predict s':>9s} {'size':>10s}")
    for name, p1, p5, f, p, nb in rows:
        out(f"{name:32s} {p1:6.3f} {p5:6.3f} {f:7.2f} {p:9.2f} {nb / 2**20:8.2f} MB")
    return rows
