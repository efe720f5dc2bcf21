"""Row-wise top-k selection.

This is the single top-k routine of the package: metrics, estimators and the
chunked scorers all call it, so ties are broken the same way everywhere (the
lower column index wins).
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp


def _reversed(a):
    """An order-reversing map of ``a``: ``-a``, or ``~a`` for integers and
    bools, whose negation wraps (``-uint8(1)`` is 255, ``-int8(-128)`` is
    -128) while ``~a`` reverses their order exactly."""
    return ~a if a.dtype.kind in "biu" else -a


def check_k(k, n_classes):
    """``predict_topk``'s ``k``, checked alike by every estimator and device:
    an integer (not a bool) in ``[1, n_classes]``; returned as an ``int``.

    Examples
    --------
    >>> check_k(3, 5)
    3
    """
    if not isinstance(k, Integral) or isinstance(k, (bool, np.bool_)):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if not 1 <= k <= n_classes:
        raise ValueError(f"k must be an integer in [1, n_classes={n_classes}]; got {k!r}")
    return int(k)


def topk(scores, k, *, sort=True):
    """Return the ``k`` largest entries of each row of ``scores``.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_cols)
        Dense real scores (integers and bools too). NaN is refused.
    k : int
        Number of entries to keep per row, ``1 <= k <= n_cols``.
    sort : bool, default=True
        Order the ``k`` entries from best to worst. Ties are always broken by
        the lower column index.

    Returns
    -------
    indices : ndarray of shape (n_rows, k), dtype int64
        Column indices of the selected entries.
    values : ndarray of shape (n_rows, k)
        ``scores[i, indices[i]]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.utils import topk
    >>> idx, val = topk(np.array([[0.1, 0.7, 0.2, 0.7]]), 2)
    >>> idx.tolist(), val.tolist()
    ([[1, 3]], [[0.7, 0.7]])
    """
    if sp.issparse(scores):
        raise TypeError("scores must be a dense array, not a sparse matrix (use .toarray())")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    if scores.dtype.kind not in "biuf":
        raise TypeError(f"scores must hold real numbers; got dtype {scores.dtype}")
    if not isinstance(k, Integral) or isinstance(k, (bool, np.bool_)):
        raise TypeError(f"k must be an integer; got {type(k).__name__}")
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n_rows, n_cols = scores.shape
    k = int(k)
    if not 1 <= k <= n_cols:
        raise ValueError(f"k must be in [1, {n_cols}] (the number of columns), got {k}")
    if n_rows == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=scores.dtype)
    if k == n_cols:
        idx = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    else:
        idx = np.argpartition(_reversed(scores), k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, idx, axis=1)
        kth = vals.min(axis=1)
        # argpartition picks an arbitrary member of a tie that straddles the
        # k-th position: redo those (rare) rows exactly.
        n_ge = (scores >= kth[:, None]).sum(axis=1)
        for i in np.flatnonzero(n_ge > k):
            idx[i] = np.argsort(_reversed(scores[i]), kind="stable")[:k]
    vals = np.take_along_axis(scores, idx, axis=1)
    if sort:
        # lexsort: last key is primary -> sort by -value, then by index.
        order = np.lexsort((idx, _reversed(vals)), axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
    return idx.astype(np.int64, copy=False), vals


def merge_topk(idx_a, val_a, idx_b, val_b, k):
    """Merge two per-row candidate lists into the best ``k``, best first.

    Used to keep a running top-k while scoring classes block by block.
    """
    idx = np.concatenate([idx_a, idx_b], axis=1)
    val = np.concatenate([val_a, val_b], axis=1)
    order = np.lexsort((idx, _reversed(val)), axis=1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)
