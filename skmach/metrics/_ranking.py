"""Ranking metrics for extreme classification: P@k, nDCG@k and PSP@k.

All metrics take the true labels as a binary indicator matrix (dense or SciPy
sparse, never densified) or as a 1-D array of class indices (multi-class), and
the predictions either as an integer array of top-ranked label indices (best
first, ``-1`` for "no label") or as a floating-point score matrix from which the
top ``k`` labels are taken.
"""

import numbers

import numpy as np
import scipy.sparse as sp

from ..utils._topk import topk

__all__ = ["precision_at_k", "ndcg_at_k", "psp_at_k", "propensity_scores"]


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _check_k(k):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def _is_integer_dtype(dtype):
    return np.issubdtype(dtype, np.integer)


def _as_pred_array(y_pred):
    """Return y_pred as a sparse matrix or an ndarray and whether it holds scores."""
    if sp.issparse(y_pred):
        if y_pred.ndim != 2:
            raise ValueError(f"y_pred must be 2-D, got shape {y_pred.shape}")
        if not np.issubdtype(y_pred.dtype, np.floating):
            raise TypeError(
                "A sparse y_pred must be a floating-point score matrix; got dtype "
                f"{y_pred.dtype}. Pass label indices as a dense integer array."
            )
        return y_pred, True
    y_pred = np.asarray(y_pred)
    if _is_integer_dtype(y_pred.dtype):
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        if y_pred.ndim != 2:
            raise ValueError(
                f"Integer y_pred (label indices) must have shape (n_samples, k), "
                f"got {y_pred.shape}"
            )
        return y_pred, False
    if np.issubdtype(y_pred.dtype, np.floating):
        if y_pred.ndim != 2:
            raise ValueError(
                f"Floating-point y_pred (scores) must have shape (n_samples, "
                f"n_classes), got {y_pred.shape}"
            )
        return y_pred, True
    raise TypeError(
        "y_pred must be an integer array of label indices (best first) or a "
        f"floating-point score matrix; got dtype {y_pred.dtype}"
    )


def _check_y_true(y_true, n_classes):
    """Canonical CSR indicator (sorted, no duplicates) of shape (n, K)."""
    if sp.issparse(y_true):
        if y_true.ndim != 2:
            raise ValueError(f"y_true must be 2-D, got shape {y_true.shape}")
        Y = sp.csr_matrix(y_true, copy=True)
        Y.sum_duplicates()  # also sorts indices
        Y.eliminate_zeros()
        data = Y.data
    else:
        y_true = np.asarray(y_true)
        if y_true.ndim == 1:
            if not _is_integer_dtype(y_true.dtype):
                raise TypeError(
                    "A 1-D y_true must hold integer class indices; got dtype "
                    f"{y_true.dtype}"
                )
            if y_true.size and y_true.min() < 0:
                raise ValueError("y_true contains negative class indices")
            if n_classes is None:
                raise ValueError("n_classes is needed for a 1-D y_true")  # internal
            if y_true.size and y_true.max() >= n_classes:
                raise ValueError(
                    f"y_true contains class index {int(y_true.max())}, out of range "
                    f"for n_classes={n_classes}"
                )
            n = len(y_true)
            return sp.csr_matrix(
                (np.ones(n, dtype=np.float32), y_true.astype(np.int64), np.arange(n + 1)),
                shape=(n, n_classes),
            )
        if y_true.ndim != 2:
            raise ValueError(
                f"y_true must be a 2-D indicator matrix or 1-D class indices, got "
                f"shape {y_true.shape}"
            )
        if not (
            _is_integer_dtype(y_true.dtype)
            or np.issubdtype(y_true.dtype, np.floating)
            or y_true.dtype == bool
        ):
            raise TypeError(f"y_true must be numeric, got dtype {y_true.dtype}")
        Y = sp.csr_matrix(y_true)
        Y.eliminate_zeros()
        data = Y.data
    if data.size and not np.all(data == 1):
        raise ValueError(
            "y_true must be a binary indicator matrix with values in {0, 1}"
        )
    if n_classes is not None and Y.shape[1] != n_classes:
        raise ValueError(
            f"y_true has {Y.shape[1]} columns but n_classes={n_classes}"
        )
    return Y


def _sparse_row_topk(M, k):
    """Top-k stored entries per CSR row, best first, ties by lower index.

    Rows with fewer than ``k`` stored entries are padded with index -1 and
    value 0.
    """
    n = M.shape[0]
    counts = np.diff(M.indptr)
    rows = np.repeat(np.arange(n), counts)
    order = np.lexsort((M.indices, -M.data, rows))
    pos = np.arange(M.nnz) - M.indptr[rows]  # rows stay sorted under lexsort
    keep = pos < k
    sel = order[keep]
    idx = np.full((n, k), -1, dtype=np.int64)
    val = np.zeros((n, k), dtype=M.data.dtype)
    idx[rows[keep], pos[keep]] = M.indices[sel]
    val[rows[keep], pos[keep]] = M.data[sel]
    return idx, val


def _prepare(y_true, y_pred, k, n_classes):
    """Validate inputs; return (Y csr, ranked label indices, k).

    The ranking has ``min(k, n_labels)`` columns at most (more only where
    ``y_pred`` lists more), -1 padding the rows with fewer labels: ranks past
    the number of labels can only be misses, and a huge ``k`` must not
    allocate an (n_samples, k) array. The metrics divide by ``k``.
    """
    k = _check_k(k)
    if n_classes is not None:
        if isinstance(n_classes, (bool, np.bool_)) or not isinstance(
            n_classes, numbers.Integral
        ):
            raise TypeError(f"n_classes must be an integer, got {n_classes!r}")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        n_classes = int(n_classes)
    y_pred, is_scores = _as_pred_array(y_pred)

    y_true_1d = not sp.issparse(y_true) and np.ndim(y_true) == 1
    if y_true_1d and n_classes is None:
        # Infer the number of classes from the predictions.
        y_arr = np.asarray(y_true)
        if is_scores:
            n_classes = y_pred.shape[1]
        else:
            hi = max(
                int(y_arr.max()) if y_arr.size and _is_integer_dtype(y_arr.dtype) else 0,
                int(y_pred.max()) if y_pred.size else 0,
            )
            n_classes = hi + 1
    Y = _check_y_true(y_true, n_classes)
    n_samples, n_labels = Y.shape

    if y_pred.shape[0] != n_samples:
        raise ValueError(
            f"y_true and y_pred have different numbers of samples: {n_samples} "
            f"and {y_pred.shape[0]}"
        )
    if is_scores:
        if y_pred.shape[1] != n_labels:
            raise ValueError(
                f"The score matrix y_pred has {y_pred.shape[1]} columns but y_true "
                f"has {n_labels} classes"
            )
        if sp.issparse(y_pred):
            S = sp.csr_matrix(y_pred)
            if not np.all(np.isfinite(S.data)):
                raise ValueError("y_pred contains NaN or infinite scores")
            S = S.copy()
            S.sum_duplicates()
            ranked, _ = _sparse_row_topk(S, min(k, n_labels))
        else:
            if np.isnan(y_pred).any():
                raise ValueError("y_pred contains NaN scores")
            ranked, _ = topk(y_pred, min(k, n_labels))
    else:
        ranked = y_pred.astype(np.int64, copy=False)
        if ranked.size:
            lo, hi = ranked.min(), ranked.max()
            if lo < -1 or hi >= n_labels:
                bad = int(lo if lo < -1 else hi)
                raise ValueError(
                    f"y_pred contains label index {bad}, out of range for "
                    f"{n_labels} classes (use -1 for padding)"
                )
        width = min(k, n_labels)
        if ranked.shape[1] >= k:
            ranked = ranked[:, :k]
        elif ranked.shape[1] < width:
            ranked = np.hstack(
                [ranked, np.full((n_samples, width - ranked.shape[1]), -1, dtype=np.int64)]
            )
        if k > 1 and n_samples:
            s = np.sort(ranked, axis=1)
            if np.any((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)):
                raise ValueError("y_pred lists the same label twice in a row")
    return Y, ranked, k


def _relevance(Y, ranked):
    """Boolean (n, k): whether ranked[i, j] is a true label of sample i.

    Uses a sorted key ``row * n_labels + label`` over the stored entries of
    the canonical CSR ``Y`` and ``searchsorted``: O((nnz + n k) log nnz), no
    dense (n, n_labels) array.
    """
    n, n_labels = Y.shape
    if Y.nnz == 0 or ranked.size == 0:
        return np.zeros(ranked.shape, dtype=bool)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(Y.indptr))
    keys = rows * n_labels + Y.indices.astype(np.int64)  # sorted: canonical CSR
    q = np.arange(n, dtype=np.int64)[:, None] * n_labels + ranked
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, keys.size - 1)
    return (keys[pos] == q) & (ranked >= 0)


def _discounts(k):
    return 1.0 / np.log2(np.arange(2, k + 2))


# --------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------

_PARAMS_DOC = """
    y_true : {array-like, sparse matrix} of shape (n_samples, n_classes) or (n_samples,)
        True labels: a binary indicator matrix (dense or SciPy sparse; a sparse
        matrix is never densified), or a 1-D array of integer class indices
        for multi-class problems (one true label per sample).
    y_pred : array-like or sparse matrix
        Predictions, dispatched on dtype:

        - **integer** dtype, shape (n_samples, k'): indices of the top-ranked
          labels, best first. ``-1`` pads rows with fewer labels ("no label",
          never relevant). Only the first ``k`` columns are used; if
          ``k' < k`` the missing positions count as misses.
        - **floating** dtype, shape (n_samples, n_classes), dense or sparse:
          scores. The ``k`` best labels of each row are taken with
          :func:`skmach.utils.topk` (ties broken by the lower label index).
          For a sparse score matrix only the stored entries are candidates;
          rows with fewer than ``k`` stored entries are padded with misses.
    k : int, default=5
        Number of top-ranked labels to evaluate.
"""


def precision_at_k(y_true, y_pred, k=5, *, n_classes=None):
    """Precision at k, averaged over samples.

    ``P@k = (1/k) * sum_{l in top-k(y_pred)} y_l`` for each sample; the mean
    over samples is returned. The divisor is always ``k``, also for samples
    with fewer than ``k`` true labels (the XC repository convention).

    Parameters
    ----------{params}    n_classes : int, optional
        Number of classes when ``y_true`` is 1-D. Inferred otherwise (from the
        score matrix width, or as the largest index seen plus one).

    Returns
    -------
    score : float
        Mean precision at k, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.metrics import precision_at_k
    >>> y_true = np.array([[1, 0, 1], [0, 1, 0]])
    >>> y_pred = np.array([[2, 1], [0, 1]])  # label indices, best first
    >>> precision_at_k(y_true, y_pred, k=1)
    0.5
    >>> precision_at_k(y_true, np.array([[.1, .2, .9], [.3, .8, .1]]), k=2)
    0.5
    """
    Y, ranked, k = _prepare(y_true, y_pred, k, n_classes)
    if Y.shape[0] == 0:
        raise ValueError("y_true has no samples")
    rel = _relevance(Y, ranked)
    return float(rel.sum(axis=1).mean() / k)


def ndcg_at_k(y_true, y_pred, k=5, *, n_classes=None):
    """Normalised discounted cumulative gain at k, averaged over samples.

    ``DCG@k = sum_{j=1..k} y_{r_j} / log2(j + 1)`` where ``r_j`` is the label
    ranked ``j``-th, and ``nDCG@k = DCG@k / sum_{j=1..min(k, |y|)} 1 / log2(j + 1)``
    (the XC repository definition). Samples without any true label score 0.

    Parameters
    ----------{params}    n_classes : int, optional
        Number of classes when ``y_true`` is 1-D (see :func:`precision_at_k`).

    Returns
    -------
    score : float
        Mean nDCG at k, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.metrics import ndcg_at_k
    >>> y_true = np.array([[1, 0, 1]])
    >>> round(ndcg_at_k(y_true, np.array([[0, 1]]), k=2), 4)
    0.6131
    >>> ndcg_at_k(y_true, np.array([[2, 0]]), k=2)
    1.0
    """
    Y, ranked, k = _prepare(y_true, y_pred, k, n_classes)
    if Y.shape[0] == 0:
        raise ValueError("y_true has no samples")
    rel = _relevance(Y, ranked)
    disc = _discounts(ranked.shape[1])  # at least min(k, n_labels) ranks
    dcg = rel @ disc
    n_true = np.minimum(np.diff(Y.indptr), ranked.shape[1])  # (k may exceed int32)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[n_true]
    out = np.zeros_like(dcg)
    np.divide(dcg, ideal, out=out, where=ideal > 0)
    return float(out.mean())


def _check_propensities(propensities, n_labels):
    if propensities is None:
        raise ValueError(
            "psp_at_k needs propensities; compute them from the training labels "
            "with propensity_scores(Y_train)"
        )
    p = np.asarray(propensities, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] != n_labels:
        raise ValueError(
            f"propensities must have shape ({n_labels},) (one per class), got "
            f"{p.shape}"
        )
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("propensities must be finite and > 0")
    return p


def psp_at_k(y_true, y_pred, k=5, *, propensities, normalize=True, n_classes=None):
    """Propensity-scored precision at k (Jain et al., KDD 2016).

    The unnormalised score of one sample is
    ``PSP@k = (1/k) * sum_{l in top-k(y_pred)} y_l / p_l``, which rewards
    correct predictions of rare (low-propensity) labels.

    With ``normalize=True`` (default) the score is divided by the best value
    achievable on the same data, as in the Extreme Classification Repository's
    evaluation code (``pyxclib``'s ``psprecision``): the mean over samples of
    the unnormalised PSP@k divided by the mean over samples of its maximum
    (each sample's ``k`` true labels of smallest propensity ranked first).
    This is a ratio of means, not a mean of per-sample ratios, and it is 1.0
    exactly when every sample's prediction is optimal. If no sample has a true
    label the score is 0.

    Parameters
    ----------{params}    propensities : array-like of shape (n_classes,)
        Label propensities ``p_l`` in (0, 1], usually
        ``propensity_scores(Y_train)``.
    normalize : bool, default=True
        Divide by the best achievable value (see above). If False return the
        plain mean of the per-sample PSP@k.
    n_classes : int, optional
        Number of classes when ``y_true`` is 1-D (see :func:`precision_at_k`).

    Returns
    -------
    score : float

    See Also
    --------
    propensity_scores : The propensity model of Jain et al.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.metrics import psp_at_k
    >>> y_true = np.array([[1, 0, 1], [0, 1, 0]])
    >>> p = np.array([0.5, 0.5, 0.25])
    >>> psp_at_k(y_true, np.array([[2], [1]]), k=1, propensities=p)
    1.0
    >>> psp_at_k(y_true, np.array([[0], [1]]), k=1, propensities=p)
    0.6666666666666666
    """
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    Y, ranked, k = _prepare(y_true, y_pred, k, n_classes)
    if Y.shape[0] == 0:
        raise ValueError("y_true has no samples")
    p = _check_propensities(propensities, Y.shape[1])
    inv = 1.0 / p
    rel = _relevance(Y, ranked)
    gain = np.where(rel, inv[np.maximum(ranked, 0)], 0.0).sum(axis=1) / k
    if not normalize:
        return float(gain.mean())
    W = sp.csr_matrix((inv[Y.indices], Y.indices, Y.indptr), shape=Y.shape)
    _, best = _sparse_row_topk(W, min(k, W.shape[1]))
    best = best.sum(axis=1) / k
    denom = best.mean()
    if denom == 0:
        return 0.0
    return float(gain.mean() / denom)


for _f in (precision_at_k, ndcg_at_k, psp_at_k):
    _f.__doc__ = _f.__doc__.replace("{params}", _PARAMS_DOC)
del _f


def propensity_scores(Y_train, A=0.55, B=1.5):
    """Label propensities of Jain et al. (KDD 2016).

    ``p_l = 1 / (1 + C * exp(-A * log(N_l + B)))`` with
    ``C = (log N - 1) * (B + 1) ** A``, where ``N_l`` is the number of training
    samples with label ``l`` and ``N`` the number of training samples
    (natural logarithms). Frequent labels get propensities close to 1, rare
    ones small values.

    The defaults ``A=0.55, B=1.5`` are the XC repository's general setting;
    it uses ``A=0.6, B=2.6`` for Amazon data sets and ``A=0.5, B=0.4`` for
    Wikipedia ones.

    Parameters
    ----------
    Y_train : {array-like, sparse matrix} of shape (n_samples, n_classes)
        Binary indicator matrix of the training labels (never densified).
    A : float, default=0.55
        Exponent, > 0.
    B : float, default=1.5
        Offset, > 0.

    Returns
    -------
    propensities : ndarray of shape (n_classes,), dtype float64

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.metrics import propensity_scores
    >>> Y = np.array([[1, 0], [1, 0], [1, 1], [1, 0]])
    >>> p = propensity_scores(Y)
    >>> bool(p[0] > p[1])
    True
    """
    for name, v in (("A", A), ("B", B)):
        if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be a real number, got {v!r}")
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    if not sp.issparse(Y_train) and np.ndim(Y_train) != 2:
        raise ValueError(
            f"Y_train must be a 2-D indicator matrix, got shape {np.shape(Y_train)}"
        )
    Y = _check_y_true(Y_train, None)
    N, n_labels = Y.shape
    if N < 3:
        raise ValueError(
            f"propensity_scores needs at least 3 training samples (log N > 1), got {N}"
        )
    N_l = np.bincount(Y.indices, minlength=n_labels).astype(np.float64)
    C = (np.log(N) - 1.0) * (B + 1.0) ** A
    return 1.0 / (1.0 + C * np.exp(-A * np.log(N_l + B)))
