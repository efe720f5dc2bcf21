"""Top-k scorers usable as ``scoring=`` in scikit-learn model selection."""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from .._api import _final_estimator, predict_topk
from ..utils._topk import topk
from ._ranking import ndcg_at_k, precision_at_k, psp_at_k

__all__ = [
    "make_topk_scorer",
    "precision_at_1_scorer",
    "precision_at_3_scorer",
    "precision_at_5_scorer",
]

_METRICS = {"precision": precision_at_k, "ndcg": ndcg_at_k, "psp": psp_at_k}


def _positions(values, classes):
    """Position of each value in ``classes``; -1 where it is not a class."""
    values = np.asarray(values)
    classes = np.asarray(classes)
    if classes.size == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    try:
        order = np.argsort(classes, kind="stable")
        sorted_classes = classes[order]
        pos = np.searchsorted(sorted_classes, values.ravel())
    except TypeError:
        # Mixed or non-orderable types: fall back to a dictionary.
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        flat = [lookup.get(v, -1) for v in values.ravel().tolist()]
        return np.asarray(flat, dtype=np.int64).reshape(values.shape)
    pos = np.clip(pos, 0, len(classes) - 1)
    found = sorted_classes[pos] == values.ravel()
    out = np.where(found, order[pos], -1).astype(np.int64)
    return out.reshape(values.shape)


def _scores_to_matrix(scores, n_classes):
    """Normalise predict_proba / decision_function output to (n, n_classes)."""
    if isinstance(scores, list):
        # Multi-output predict_proba: one (n, 2) array per label.
        scores = np.column_stack([np.asarray(s)[:, -1] for s in scores])
    if sp.issparse(scores):
        scores = scores.toarray()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        if n_classes != 2:
            raise ValueError(
                "decision_function returned 1-D scores for an estimator with "
                f"{n_classes} classes"
            )
        scores = np.column_stack([-scores, scores])
    return scores


class _TopKScorer:
    """Callable ``scorer(estimator, X, y)`` computing a top-k ranking metric."""

    def __init__(self, metric, k, propensities=None):
        self.metric = metric
        self.k = k
        self.propensities = propensities

    def __repr__(self):
        extra = ", propensities=..." if self.propensities is not None else ""
        return f"make_topk_scorer(metric={self.metric!r}, k={self.k}{extra})"

    def _ranked_positions(self, estimator, X, n_classes, k):
        kk = min(k, n_classes)
        # Pipelines and searches do not forward predict_topk: skmach.predict_topk
        # unwraps them, so that no dense n_samples x n_classes matrix is built
        # for extreme label spaces.
        try:
            final = _final_estimator(estimator)
        except TypeError:
            final = None  # no predict_topk at the end: rank predict_proba's columns
        if final is not None:
            labels, _ = predict_topk(estimator, X, kk)
            return _positions(labels, final.classes_)
        if hasattr(estimator, "predict_proba"):
            scores = estimator.predict_proba(X)
        elif hasattr(estimator, "decision_function"):
            scores = estimator.decision_function(X)
        else:
            raise TypeError(
                f"{type(estimator).__name__} has none of predict_topk, "
                "predict_proba or decision_function; a top-k scorer needs one"
            )
        scores = _scores_to_matrix(scores, n_classes)
        if scores.shape[1] != n_classes:
            raise ValueError(
                f"The estimator's scores have {scores.shape[1]} columns but it "
                f"has {n_classes} classes_"
            )
        idx, _ = topk(scores, kk)
        return idx

    def __call__(self, estimator, X, y, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("top-k scorers do not support sample_weight")
        if not hasattr(estimator, "classes_"):
            if hasattr(estimator, "fit"):  # an estimator, not fitted yet
                raise NotFittedError(
                    f"This {type(estimator).__name__} instance is not fitted yet; fit it "
                    "before scoring"
                )
            raise TypeError(
                f"{type(estimator).__name__} has no classes_; fit it before scoring"
            )
        classes = np.asarray(estimator.classes_)
        if classes.ndim != 1:
            raise ValueError(
                "The estimator's classes_ must be 1-D (a multi-output estimator "
                "is not supported unless it is multi-label with one column per label)"
            )
        n_classes = len(classes)
        ranked = self._ranked_positions(estimator, X, n_classes, self.k)

        if sp.issparse(y) or (np.ndim(y) == 2 and np.shape(y)[1] > 1):
            Y = y if sp.issparse(y) else np.asarray(y)
            if Y.shape[1] != n_classes:
                raise ValueError(
                    f"y has {Y.shape[1]} label columns but the estimator has "
                    f"{n_classes} classes_"
                )
        else:
            y = np.asarray(y)
            if y.ndim == 2:
                y = y.ravel()
            pos = _positions(y, classes)
            known = pos >= 0  # an unknown true label can only be missed
            n = len(y)
            indptr = np.concatenate([[0], np.cumsum(known)])
            Y = sp.csr_matrix(
                (np.ones(int(known.sum()), dtype=np.float32), pos[known], indptr),
                shape=(n, n_classes),
            )
        kwargs = {}
        if self.metric == "psp":
            kwargs["propensities"] = self.propensities
        return _METRICS[self.metric](Y, ranked, k=self.k, **kwargs)


def make_topk_scorer(metric="precision", k=1, propensities=None):
    """Make a scorer for a top-k ranking metric.

    The scorer is a callable ``scorer(estimator, X, y)`` usable as the
    ``scoring`` argument of :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score`, etc. (greater is better).

    It ranks labels with :func:`skmach.predict_topk` (the estimator's own
    ``predict_topk``, reached through a :class:`~sklearn.pipeline.Pipeline`
    or a search's ``best_estimator_``; labels are taken from the final
    estimator's ``classes_``). When the estimator has no ``predict_topk`` it takes the top ``k`` columns of
    ``predict_proba(X)`` (or else ``decision_function(X)``), so scikit-learn
    classifiers such as :class:`~sklearn.multiclass.OneVsRestClassifier`
    work too.

    ``y`` may be 1-D multi-class labels of any type (strings too), mapped to
    positions in ``estimator.classes_`` (a true label that the estimator does
    not know counts as a miss), or a 2-D binary indicator matrix (dense or
    sparse) with one column per entry of ``classes_``.

    Parameters
    ----------
    metric : {"precision", "ndcg", "psp"}, default="precision"
        :func:`precision_at_k`, :func:`ndcg_at_k` or :func:`psp_at_k`.
    k : int, default=1
        Number of top-ranked labels.
    propensities : array-like of shape (n_classes,), optional
        Required for ``metric="psp"`` (see :func:`propensity_scores`), in the
        order of ``estimator.classes_``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skmach.metrics import make_topk_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=1000).fit(X, y)
    >>> scorer = make_topk_scorer("precision", k=1)
    >>> scorer(clf, X, y) == clf.score(X, y)
    True
    >>> make_topk_scorer("precision", k=3)(clf, X, y)  # 3 classes, 1 true label
    0.3333333333333333
    """
    if metric not in _METRICS:
        raise ValueError(
            f"metric must be one of {sorted(_METRICS)}, got {metric!r}"
        )
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if metric == "psp":
        if propensities is None:
            raise ValueError("metric='psp' needs propensities")
        propensities = np.asarray(propensities, dtype=np.float64)
    elif propensities is not None:
        raise ValueError(f"propensities are only used by metric='psp', not {metric!r}")
    return _TopKScorer(metric, int(k), propensities)


precision_at_1_scorer = make_topk_scorer("precision", k=1)
precision_at_3_scorer = make_topk_scorer("precision", k=3)
precision_at_5_scorer = make_topk_scorer("precision", k=5)
