"""``skmach.predict_topk``: top-k through pipelines and searches."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import skmach
from skmach import LSHSparseMLPClassifier, MACHClassifier
from skmach.datasets import make_extreme_classification
from skmach.metrics import make_topk_scorer


@pytest.fixture(scope="module")
def data():
    X, y = make_extreme_classification(n_samples=400, n_features=80, n_classes=25,
                                       random_state=0)
    return X, y


def _mach(**kw):
    return MACHClassifier(n_buckets=8, n_repetitions=4, n_epochs=3, random_state=0, **kw)


def test_bare_estimator_is_its_own_predict_topk(data):
    X, y = data
    clf = _mach().fit(X, y)
    labels, scores = skmach.predict_topk(clf, X[:50], k=4)
    ref_labels, ref_scores = clf.predict_topk(X[:50], 4)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(scores, ref_scores)


def test_pipeline_equals_manual_unwrapping(data):
    X, y = data
    # the scaler changes X, so forgetting to transform would give other labels
    pipe = Pipeline([("scale", MaxAbsScaler()), ("mach", _mach())]).fit(X * 7.0, y)
    labels, scores = skmach.predict_topk(pipe, X * 7.0, k=5)
    manual_labels, manual_scores = pipe[-1].predict_topk(pipe[:-1].transform(X * 7.0), 5)
    np.testing.assert_array_equal(labels, manual_labels)
    np.testing.assert_array_equal(scores, manual_scores)
    # the comparison can fail: skipping the scaler gives other scores
    _, untransformed_scores = pipe[-1].predict_topk(X * 7.0, 5)
    assert not np.allclose(scores, untransformed_scores)


def test_text_pipeline_takes_raw_text():
    texts = [f"word{i % 7} other{i % 3}" for i in range(120)]
    y = np.array([i % 7 for i in range(120)])
    pipe = make_pipeline(HashingVectorizer(n_features=2**8), _mach()).fit(texts, y)
    labels, _ = skmach.predict_topk(pipe, texts[:10], k=2)
    manual, _ = pipe[-1].predict_topk(pipe[:-1].transform(texts[:10]), 2)
    np.testing.assert_array_equal(labels, manual)
    assert np.mean(labels[:, 0] == y[:10]) > 0.5


@pytest.mark.parametrize("search_cls", [GridSearchCV, RandomizedSearchCV])
def test_search_over_pipeline_equals_manual_unwrapping(data, search_cls):
    X, y = data
    pipe = Pipeline([("scale", MaxAbsScaler()), ("mach", _mach())])
    grid = {"mach__n_buckets": [4, 16]}
    kwargs = dict(cv=KFold(2, shuffle=True, random_state=0))
    if search_cls is RandomizedSearchCV:
        kwargs.update(n_iter=2, random_state=0)
    search = search_cls(pipe, grid, scoring=make_topk_scorer("precision", k=1),
                        **kwargs).fit(X, y)
    labels, scores = skmach.predict_topk(search, X[:60], k=3)
    best = search.best_estimator_
    manual_labels, manual_scores = best[-1].predict_topk(best[:-1].transform(X[:60]), 3)
    np.testing.assert_array_equal(labels, manual_labels)
    np.testing.assert_array_equal(scores, manual_scores)
    assert search.predict(X[:60]).tolist() == labels[:, 0].tolist()


def test_nested_pipeline_in_search_and_lsh_estimator(data):
    X, y = data
    inner = make_pipeline(MaxAbsScaler(), LSHSparseMLPClassifier(
        hidden_layer_sizes=(16,), n_epochs=2, random_state=0))
    outer = make_pipeline(MaxAbsScaler(), inner)
    search = GridSearchCV(outer, {"pipeline__lshsparsemlpclassifier__n_epochs": [1]},
                          cv=KFold(2)).fit(X, y)
    labels, _ = skmach.predict_topk(search, X[:20], k=2)
    best = search.best_estimator_
    Xt = best[-1][:-1].transform(best[:-1].transform(X[:20]))
    np.testing.assert_array_equal(labels, best[-1][-1].predict_topk(Xt, 2)[0])


def test_clear_errors(data):
    X, y = data
    logreg = make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=50)).fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression.*step 'logisticregression'"):
        skmach.predict_topk(logreg, X, k=2)
    for bad in (None, "model", np.zeros(3), MACHClassifier):
        with pytest.raises(TypeError, match="predict_topk needs a skmach estimator"):
            skmach.predict_topk(bad, X, k=2)
    with pytest.raises(TypeError, match="got str"):
        skmach.predict_topk(Pipeline([("s", MaxAbsScaler()), ("p", "passthrough")]), X, 1)
    search = GridSearchCV(_mach(), {"n_buckets": [4]}, cv=KFold(2))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        skmach.predict_topk(search, X, k=2)
    search.set_params(refit=False).fit(X, y)
    with pytest.raises(ValueError, match="refit=False"):
        skmach.predict_topk(search, X, k=2)
    with pytest.raises(NotFittedError):
        skmach.predict_topk(make_pipeline(MaxAbsScaler(), _mach()), X, k=2)
    fitted = _mach().fit(X, y)
    with pytest.raises(ValueError, match="k"):
        skmach.predict_topk(fitted, X, k=0)


def test_scorer_goes_through_search_without_predict_proba(data):
    X, y = data
    search = GridSearchCV(make_pipeline(MaxAbsScaler(), _mach()),
                          {"machclassifier__n_buckets": [8]}, cv=KFold(2)).fit(X, y)
    # predict_proba of the best estimator would refuse with this limit
    search.best_estimator_.set_params(machclassifier__max_proba_bytes=8)
    with pytest.raises(ValueError, match="dense"):
        search.predict_proba(X)
    score = make_topk_scorer("precision", k=1)(search, X, y)
    labels, _ = skmach.predict_topk(search, X, 1)
    assert score == np.mean(labels[:, 0] == y)
