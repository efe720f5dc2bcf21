"""MACH scoring kernels (NumPy reference).

A fitted MACH model gives, for each sample, R bucket distributions ``P`` of
shape ``(n_samples, R, B)``. A class ``c`` is scored from the buckets it hashes
to, ``P[:, r, h_r(c)]``, combined over repetitions by one of the estimators
below. Classes are scored block by block, so no ``n_samples x n_classes``
matrix larger than one block is ever held; :func:`topk_classes` keeps a
running top-k over the blocks.

Aggregations
------------
``"mean"``
    The paper's estimator: ``mean_r P[:, r, h_r(c)]``; its unbiased rescaling
    ``B/(B-1) * (mean - 1/B)`` (:func:`unbiased`) is a monotone map, so it
    ranks classes identically.
``"logmean"``
    Mean of log-probabilities (geometric mean): a class must score well in
    every repetition, which penalises classes that share a strong bucket in a
    few repetitions only.
``"min"``
    Count-min-sketch estimate: the smallest bucket probability over the
    repetitions, an upper bound for each class's own probability.
"""

import numpy as np

from ..utils._topk import merge_topk, topk

AGGREGATIONS = ("mean", "logmean", "min")
_LOG_EPS = 1e-12


def class_scores(P, hash_family, classes, aggregation="mean", out=None):
    """Scores of the given classes, shape ``(n_samples, len(classes))``.

    Parameters
    ----------
    P : ndarray of shape (n_samples, R, B)
        Bucket probabilities of each repetition.
    hash_family : callable
        ``hash_family(classes)`` returns bucket ids of shape ``(R, len(classes))``.
    classes : ndarray of int
        Class indices to score.
    aggregation : {"mean", "logmean", "min"}

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[0.9, 0.1], [0.2, 0.8]]])          # 1 sample, R=2, B=2
    >>> H = lambda c: np.array([[0, 1, 0], [1, 0, 0]])[:, c]
    >>> class_scores(P, H, np.arange(3)).round(2).tolist()
    [[0.85, 0.15, 0.55]]
    """
    n, R, _ = P.shape
    H = hash_family(classes)
    dtype = P.dtype
    if out is None:
        out = np.empty((n, len(classes)), dtype=dtype)
    if aggregation == "mean":
        out.fill(0)
        for r in range(R):
            out += P[:, r, :].take(H[r], axis=1)
        out *= dtype.type(1.0 / R)
    elif aggregation == "logmean":
        logP = np.log(np.maximum(P, _LOG_EPS))
        out.fill(0)
        for r in range(R):
            out += logP[:, r, :].take(H[r], axis=1)
        out *= dtype.type(1.0 / R)
        np.exp(out, out=out)
    elif aggregation == "min":
        out[...] = P[:, 0, :].take(H[0], axis=1)
        for r in range(1, R):
            np.minimum(out, P[:, r, :].take(H[r], axis=1), out=out)
    else:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
    return out


def unbiased(scores, n_buckets):
    """The paper's unbiased estimator ``B/(B-1) * (mean - 1/B)`` (in place)."""
    B = n_buckets
    scores -= scores.dtype.type(1.0 / B)
    scores *= scores.dtype.type(B / (B - 1))
    return scores


def class_block_size(n_samples, n_classes, working_memory_mb, itemsize=4):
    """Number of classes per block so that one block uses ``working_memory_mb``.

    A block holds its scores, one gathered repetition, and top-k's negated
    copy and int64 partition indices: about ``5 * itemsize`` bytes per
    sample and class.
    """
    per_class = max(1, n_samples) * itemsize * 5
    return int(max(1, min(n_classes, working_memory_mb * 2**20 // per_class)))


def topk_classes(P, hash_family, n_classes, k, aggregation="mean", *,
                 candidates=None, working_memory_mb=256):
    """Top-k classes of each sample, scoring classes block by block.

    Parameters
    ----------
    P : ndarray of shape (n_samples, R, B)
    hash_family : callable
    n_classes : int
    k : int
    aggregation : str
    candidates : list of ndarray, optional
        Per-sample candidate class indices (sublinear inference). When given,
        only those classes are scored.
    working_memory_mb : int
        Bound on the size of one block of scores.

    Returns
    -------
    indices : ndarray of shape (n_samples, k), int64
    scores : ndarray of shape (n_samples, k)
    """
    n = P.shape[0]
    if candidates is not None:
        return _topk_candidates(P, hash_family, candidates, k, aggregation)
    block = max(k, class_block_size(n, n_classes, working_memory_mb))
    best_idx = best_val = None
    for start in range(0, n_classes, block):
        stop = min(n_classes, start + block)
        s = class_scores(P, hash_family, np.arange(start, stop), aggregation)
        kk = min(k, stop - start)
        idx, val = topk(s, kk)
        idx += start
        if best_idx is None:
            best_idx, best_val = idx, val
        else:
            best_idx, best_val = merge_topk(best_idx, best_val, idx, val, k)
    return best_idx, best_val


def _topk_candidates(P, hash_family, candidates, k, aggregation):
    """Score only each sample's candidate classes.

    ``candidates`` is a pair ``(indptr, classes)``: the candidates of sample
    ``i`` are ``classes[indptr[i]:indptr[i + 1]]``. They are scored in one
    flat pass and the top-k of each sample is taken over a padded matrix.
    """
    indptr, cand = candidates
    n, R, _ = P.shape
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(n), counts)
    H = hash_family(cand)  # (R, n_candidates)
    if aggregation == "mean":
        s = P[rows, 0, H[0]].astype(np.float64)
        for r in range(1, R):
            s += P[rows, r, H[r]]
        s /= R
    elif aggregation == "logmean":
        s = np.log(np.maximum(P[rows, 0, H[0]], _LOG_EPS)).astype(np.float64)
        for r in range(1, R):
            s += np.log(np.maximum(P[rows, r, H[r]], _LOG_EPS))
        s = np.exp(s / R)
    elif aggregation == "min":
        s = P[rows, 0, H[0]]
        for r in range(1, R):
            s = np.minimum(s, P[rows, r, H[r]])
    else:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
    width = max(k, int(counts.max()) if n else k)
    pos_in_row = np.arange(len(cand)) - np.repeat(indptr[:-1], counts)
    S = np.full((n, width), -np.inf, dtype=P.dtype)
    C = np.full((n, width), -1, dtype=np.int64)
    S[rows, pos_in_row] = s
    C[rows, pos_in_row] = cand
    pos, val = topk(S, k)
    idx = np.take_along_axis(C, pos, axis=1)
    short = np.flatnonzero((idx < 0).any(axis=1))
    if len(short):  # fewer than k candidates: score those samples exactly
        idx[short], val[short] = topk_classes(P[short], hash_family, hash_family.n_classes, k,
                                              aggregation)
    return idx, val


def candidate_classes(P, inverted_indices, n_top_buckets):
    """Union over repetitions of the classes in each sample's best buckets.

    This is MACH's approximate (sublinear) inference: only classes that sit
    in one of the ``n_top_buckets`` most probable buckets of some repetition
    are scored, ``R * n_top_buckets * K / B`` classes per sample on average
    instead of ``K``.

    Parameters
    ----------
    P : ndarray of shape (n_samples, R, B)
    inverted_indices : list of (indptr, classes) per repetition
        From :meth:`UniversalHashFamily.inverted_index`.
    n_top_buckets : int
        Buckets taken per repetition.

    Returns
    -------
    indptr : ndarray of shape (n_samples + 1,)
    classes : ndarray
        Sorted unique candidates of sample ``i`` in ``classes[indptr[i]:indptr[i+1]]``.
    """
    n, R, B = P.shape
    m = min(n_top_buckets, B)
    parts_rows, parts_cls = [], []
    for r in range(R):
        bptr, cls = inverted_indices[r]
        top_b = topk(P[:, r, :], m, sort=False)[0].ravel()  # (n*m,)
        starts, stops = bptr[top_b], bptr[top_b + 1]
        lens = stops - starts
        # flat gather of the concatenated bucket slices
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        flat = cls[np.arange(int(lens.sum())) + offsets]
        parts_cls.append(flat.astype(np.int64, copy=False))
        parts_rows.append(np.repeat(np.repeat(np.arange(n), m), lens))
    rows = np.concatenate(parts_rows)
    cls = np.concatenate(parts_cls)
    K = int(max((len(c) for _, c in inverted_indices), default=1))
    key = np.unique(rows * K + cls)  # sorted by sample, then class; deduplicated
    rows, cls = np.divmod(key, K)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cls
