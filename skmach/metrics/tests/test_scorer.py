import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmach.metrics import (
    make_topk_scorer,
    precision_at_1_scorer,
    precision_at_3_scorer,
    precision_at_5_scorer,
    propensity_scores,
    psp_at_k,
)


def hand_precision(proba, classes, y, k):
    """Plain per-sample P@k from a probability matrix and 1-D labels."""
    total = 0.0
    for i in range(len(y)):
        order = sorted(range(len(classes)), key=lambda j: (-proba[i][j], j))[:k]
        total += sum(1 for j in order if classes[j] == y[i]) / k
    return total / len(y)


@pytest.fixture
def multiclass_data():
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=4, random_state=0
    )
    return X, y


def test_grid_search_best_score_matches_hand_computation(multiclass_data):
    X, y = multiclass_data
    names = np.array(["ant", "bee", "cat", "dog"])[y]  # string labels
    pipe = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression()))
    cv = KFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(
        pipe,
        {"onevsrestclassifier__estimator__C": [0.01, 1.0]},
        scoring=make_topk_scorer(k=1),
        cv=cv,
    )
    grid.fit(X, names)
    best = grid.best_params_
    fold_scores = []
    for train, test in cv.split(X):
        est = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression()))
        est.set_params(**best).fit(X[train], names[train])
        proba = est.predict_proba(X[test])
        fold_scores.append(hand_precision(proba, list(est.classes_), names[test], 1))
    assert grid.best_score_ == pytest.approx(np.mean(fold_scores))
    # P@1 with one true label per sample is the accuracy.
    acc = cross_val_score(pipe.set_params(**best), X, names, cv=cv, scoring="accuracy")
    assert grid.best_score_ == pytest.approx(acc.mean())


def test_ready_made_scorers(multiclass_data):
    X, y = multiclass_data
    clf = LogisticRegression(max_iter=500).fit(X, y)
    proba = clf.predict_proba(X)
    for scorer, k in [
        (precision_at_1_scorer, 1),
        (precision_at_3_scorer, 3),
        (precision_at_5_scorer, 5),
    ]:
        assert scorer(clf, X, y) == pytest.approx(hand_precision(proba, list(clf.classes_), y, k))
    assert "k=3" in repr(precision_at_3_scorer)


def test_unknown_true_label_is_a_miss(multiclass_data):
    X, y = multiclass_data
    clf = LogisticRegression(max_iter=500).fit(X, y)
    y_test = y.copy()
    y_test[:10] = 99  # never seen in training
    expected = np.mean((clf.predict(X) == y_test))
    assert precision_at_1_scorer(clf, X, y_test) == pytest.approx(expected)


def test_decision_function_fallback_binary():
    X, y = make_classification(n_samples=60, n_features=5, random_state=1)

    class DecisionOnly:
        def __init__(self, clf):
            self.clf = clf
            self.classes_ = clf.classes_

        def decision_function(self, X):
            return self.clf.decision_function(X)

    clf = LogisticRegression().fit(X, y)
    expected = np.mean(clf.predict(X) == y)
    assert precision_at_1_scorer(DecisionOnly(clf), X, y) == pytest.approx(expected)


class TopKEstimator:
    """Minimal estimator exposing predict_topk over arbitrary classes_."""

    def __init__(self, classes, ranked_labels):
        self.classes_ = np.asarray(classes)
        self.ranked_labels = ranked_labels
        self.calls = []

    def predict_topk(self, X, k):
        self.calls.append(k)
        labels = self.ranked_labels[:, :k]
        return labels, np.zeros(labels.shape)


def test_predict_topk_is_used_and_labels_mapped_to_classes():
    classes = np.array([10, 20, 30, 40])
    ranked = np.array([[20, 10], [40, 30], [30, 20]])
    est = TopKEstimator(classes, ranked)
    y = np.array([20, 30, 5])
    X = np.zeros((3, 1))
    assert make_topk_scorer(k=1)(est, X, y) == pytest.approx(1 / 3)
    assert make_topk_scorer(k=2)(est, X, y) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert est.calls == [1, 2]
    # k larger than the number of classes is capped when calling the model.
    make_topk_scorer(k=6)(est, X, y)
    assert est.calls[-1] == 4


def test_multilabel_ovr_and_psp():
    X, Y = make_multilabel_classification(
        n_samples=80, n_features=10, n_classes=6, random_state=0
    )
    clf = OneVsRestClassifier(LogisticRegression()).fit(X, Y)
    proba = clf.predict_proba(X)
    ranked = np.argsort(-proba, axis=1, kind="stable")[:, :3]
    expected = np.mean([Y[i, ranked[i]].sum() / 3 for i in range(len(Y))])
    assert precision_at_3_scorer(clf, X, Y) == pytest.approx(expected)
    assert precision_at_3_scorer(clf, X, sp.csr_matrix(Y)) == pytest.approx(expected)
    p = propensity_scores(Y)
    scorer = make_topk_scorer("psp", k=3, propensities=p)
    assert scorer(clf, X, Y) == pytest.approx(psp_at_k(Y, proba, 3, propensities=p))
    ndcg = make_topk_scorer("ndcg", k=2)(clf, X, Y)
    assert 0 <= ndcg <= 1
    with pytest.raises(ValueError, match="label columns"):
        precision_at_1_scorer(clf, X, Y[:, :4])


def test_make_topk_scorer_validation():
    with pytest.raises(ValueError, match="metric must be one of"):
        make_topk_scorer("recall")
    with pytest.raises(ValueError, match="k must be"):
        make_topk_scorer(k=0)
    with pytest.raises(TypeError, match="k must be"):
        make_topk_scorer(k=2.0)
    with pytest.raises(ValueError, match="needs propensities"):
        make_topk_scorer("psp")
    with pytest.raises(ValueError, match="only used by"):
        make_topk_scorer("precision", propensities=np.ones(3))


def test_scorer_needs_a_ranking_method():
    class NoScores:
        classes_ = np.array([0, 1])

    with pytest.raises(TypeError, match="predict_topk"):
        precision_at_1_scorer(NoScores(), np.zeros((2, 1)), np.array([0, 1]))


def test_scoring_an_unfitted_estimator_is_not_fitted_error():
    from sklearn.exceptions import NotFittedError

    from skmach import MACHClassifier

    scorer = make_topk_scorer("precision", 1)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        scorer(MACHClassifier(), np.ones((2, 3)), [0, 1])
    with pytest.raises(TypeError, match="has no classes_"):
        scorer(object(), np.ones((2, 3)), [0, 1])  # not an estimator at all
