"""Top-k prediction through scikit-learn's meta-estimators.

:class:`~sklearn.pipeline.Pipeline` and the search classes of
:mod:`sklearn.model_selection` do not forward ``predict_topk``. The function
here unwraps them: a pipeline transforms ``X`` through its first steps, a
search uses its ``best_estimator_``, until the skmach estimator at the end
is reached.
"""

from sklearn.exceptions import NotFittedError
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline

__all__ = ["predict_topk"]


def _describe(obj):
    return type(obj).__name__


def _topk_chain(model):
    """The wrappers from ``model`` to the object whose ``predict_topk`` is used.

    Returns a list of ``(kind, obj)`` pairs: ``("pipeline", pipe)``,
    ``("search", search)`` and, last, ``("estimator", est)``. Raises
    :class:`TypeError` when ``model`` does not end in an object with a
    ``predict_topk`` method, and :class:`~sklearn.exceptions.NotFittedError`
    for a search without ``best_estimator_``.
    """
    chain = []
    obj = model
    path = []
    while True:
        if isinstance(obj, Pipeline):
            chain.append(("pipeline", obj))
            if len(obj.steps) == 0:
                raise TypeError("predict_topk: the Pipeline has no steps")
            name, last = obj.steps[-1]
            path.append(f"step {name!r}")
            obj = last
        elif isinstance(obj, BaseSearchCV):
            chain.append(("search", obj))
            if not hasattr(obj, "best_estimator_"):
                if obj.refit is False:
                    raise ValueError(
                        f"predict_topk: the {_describe(obj)} was created with "
                        "refit=False, so it has no best_estimator_ to predict with; "
                        "use refit=True (or the name of a scorer)"
                    )
                raise NotFittedError(
                    f"predict_topk: this {_describe(obj)} is not fitted yet (it has "
                    "no best_estimator_); call fit first"
                )
            path.append("best_estimator_")
            obj = obj.best_estimator_
        elif callable(getattr(obj, "predict_topk", None)) and not isinstance(obj, type):
            chain.append(("estimator", obj))
            return chain
        else:
            where = f" (reached through {' -> '.join(path)} of {_describe(model)})" if path \
                else ""
            raise TypeError(
                f"predict_topk needs a skmach estimator (MACHClassifier, "
                f"LSHSparseMLPClassifier), a Pipeline ending in one, or a "
                f"GridSearchCV / RandomizedSearchCV over one; got "
                f"{_describe(obj) if obj is not None else 'None'}{where}"
            )


def _final_estimator(model):
    """The object at the end of ``model`` whose ``predict_topk`` is used."""
    return _topk_chain(model)[-1][1]


def predict_topk(model, X, k=5):
    """The ``k`` best labels of each sample, through pipelines and searches.

    :class:`~sklearn.pipeline.Pipeline` and
    :class:`~sklearn.model_selection.GridSearchCV` do not expose the
    estimators' ``predict_topk``. This function does what one would write by
    hand: a pipeline transforms ``X`` through all its steps but the last,
    a search (``GridSearchCV``, ``RandomizedSearchCV``, the halving searches)
    predicts with its ``best_estimator_``, and so on (nested pipelines and
    searches too) until a skmach estimator is reached, whose ``predict_topk``
    gives the answer. No dense ``n_samples x n_classes`` matrix is built.

    Parameters
    ----------
    model : estimator, Pipeline or search
        A fitted :class:`~skmach.MACHClassifier` or
        :class:`~skmach.LSHSparseMLPClassifier` (or any object with a
        ``predict_topk(X, k)`` method), a fitted ``Pipeline`` whose last step
        is one of these, or a fitted search (refitted: with
        ``best_estimator_``) over one of these.
    X : array-like or sparse matrix of shape (n_samples, ...)
        Input of ``model``: what its first step takes (texts for a
        pipeline starting with a vectoriser).
    k : int, default=5
        Number of labels per sample, in ``[1, n_classes]``.

    Returns
    -------
    labels : ndarray of shape (n_samples, k)
        Labels from the final estimator's ``classes_``, best first.
    scores : ndarray of shape (n_samples, k)
        Their scores, in decreasing order.

    Raises
    ------
    TypeError
        ``model`` does not end in an estimator with ``predict_topk``.
    sklearn.exceptions.NotFittedError
        A search that was not fitted (or an estimator that was not).
    ValueError
        A search fitted with ``refit=False``, or a bad ``k`` or ``X``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MaxAbsScaler
    >>> import skmach
    >>> from skmach.datasets import make_extreme_classification
    >>> X, y = make_extreme_classification(n_samples=300, n_features=50,
    ...                                    n_classes=20, random_state=0)
    >>> pipe = make_pipeline(MaxAbsScaler(), skmach.MACHClassifier(
    ...     n_buckets=8, n_repetitions=4, random_state=0))
    >>> search = GridSearchCV(pipe, {"machclassifier__n_buckets": [4, 8]}, cv=2)
    >>> labels, scores = skmach.predict_topk(search.fit(X, y), X[:3], k=2)
    >>> labels.shape
    (3, 2)
    """
    chain = _topk_chain(model)
    for kind, obj in chain[:-1]:
        if kind == "pipeline" and len(obj.steps) > 1:
            X = obj[:-1].transform(X)
    return chain[-1][1].predict_topk(X, k)
