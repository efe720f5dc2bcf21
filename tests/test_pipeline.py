"""MACHClassifier inside scikit-learn's model-selection tools."""

import joblib
import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler

from skmach import MACHClassifier
from skmach.datasets import make_extreme_classification
from skmach.metrics import make_topk_scorer, precision_at_1_scorer, precision_at_k


def test_grid_search_over_buckets_and_repetitions_scored_by_p_at_1():
    X, y = make_extreme_classification(n_samples=900, n_features=200, n_classes=40,
                                       random_state=0)
    pipe = Pipeline([("scale", MaxAbsScaler()),
                     ("mach", MACHClassifier(n_epochs=4, random_state=0))])
    grid = {"mach__n_buckets": [4, 16], "mach__n_repetitions": [2, 8]}
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, scoring=precision_at_1_scorer, cv=cv).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (4,) and np.all((0 <= scores) & (scores <= 1))
    # More buckets and more repetitions must win on a learnable problem.
    assert search.best_params_ == {"mach__n_buckets": 16, "mach__n_repetitions": 8}
    # The score is P@1 computed by hand on the same fold.
    train, test = next(cv.split(X))
    est = pipe.set_params(**search.best_params_).fit(X[train], y[train])
    top, _ = est[-1].predict_topk(est[:-1].transform(X[test]), 1)
    manual = np.mean(top[:, 0] == y[test])
    assert np.isclose(search.cv_results_["split0_test_score"][3], manual)


def test_multilabel_pipeline_with_text_and_persistence(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    n, L = 400, 12
    Y = np.zeros((n, L), dtype=int)
    texts = []
    for i in range(n):
        labs = rng.choice(L, size=rng.integers(1, 3), replace=False)
        Y[i, labs] = 1
        toks = [words[5 * c + j] for c in labs for j in rng.integers(0, 5, 3)]
        toks += list(rng.choice(words, 2))
        texts.append(" ".join(toks))
    pipe = Pipeline([
        ("vec", HashingVectorizer(n_features=2**10)),
        ("mach", MACHClassifier(n_buckets=4, n_repetitions=6, random_state=0)),
    ]).fit(texts[:300], Y[:300])
    top, _ = pipe[-1].predict_topk(pipe[:-1].transform(texts[300:]), 2)
    assert precision_at_k(Y[300:], top, k=1) > 0.6
    scorer = make_topk_scorer("ndcg", k=3)
    assert 0 < scorer(pipe, texts[300:], Y[300:]) <= 1
    path = tmp_path / "model.joblib"
    joblib.dump(pipe, path)
    again = joblib.load(path)
    np.testing.assert_array_equal(
        again[-1].predict_topk(again[:-1].transform(texts[300:]), 2)[0], top)


def test_scorer_uses_predict_topk_of_a_pipeline_without_dense_scores():
    X, y = make_extreme_classification(n_samples=400, n_features=100, n_classes=30,
                                       random_state=0)
    pipe = Pipeline([("scale", MaxAbsScaler()),
                     ("mach", MACHClassifier(n_buckets=8, n_repetitions=4, random_state=0))])
    pipe.fit(X, y)
    # predict_proba would refuse with this limit: the scorer must not need it
    pipe.set_params(mach__max_proba_bytes=8)
    score = precision_at_1_scorer(pipe, X, y)
    top, _ = pipe[-1].predict_topk(pipe[:-1].transform(X), 1)
    assert score == np.mean(top[:, 0] == y)


def test_predict_log_proba_for_cross_val_predict_and_underflow():
    # scikit-learn's tooling asks classifiers with predict_proba for
    # predict_log_proba too (cross_val_predict(method="predict_log_proba"))
    from sklearn.model_selection import cross_val_predict

    from skmach import LSHSparseMLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 8))
    y = np.argmax(X[:, :5], axis=1)
    for est in (MACHClassifier(n_buckets=4, n_repetitions=2, n_epochs=2, random_state=0),
                LSHSparseMLPClassifier(hidden_layer_sizes=(16,), n_epochs=2, random_state=0)):
        L = cross_val_predict(est, X, y, cv=3, method="predict_log_proba")
        assert L.shape == (150, 5) and (L <= 0).all()
        fitted = est.fit(X, y)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X)),
                                       fitted.predict_proba(X), rtol=1e-6, atol=1e-12)
    # the network's log-probabilities come from the logits: finite where the
    # probability underflows to 0
    z = np.array([[0.0, -800.0, -900.0, -1000.0, -5.0]])
    fitted._scores = lambda X: z
    assert fitted.predict_proba(X[:1])[0, 1] == 0.0
    np.testing.assert_allclose(fitted.predict_log_proba(X[:1])[0, :3],
                               [-np.log1p(np.exp(-5.0)), -800 - np.log1p(np.exp(-5.0)),
                                -900 - np.log1p(np.exp(-5.0))])
