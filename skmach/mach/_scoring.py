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
    """Number of classes per block so that one block uses ``working_memory_mb``."""
    per_class = max(1, n_samples) * itemsize * 2  # scores + one gathered column
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
    """Score only each sample's candidate classes (padded to a common width)."""
    n = P.shape[0]
    width = max(k, max((len(c) for c in candidates), default=k))
    cand = np.full((n, width), -1, dtype=np.int64)
    for i, c in enumerate(candidates):
        cand[i, : len(c)] = c
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    H = hash_family(safe.ravel()).reshape(-1, n, width)  # (R, n, width)
    rows = np.arange(n)[:, None]
    R = P.shape[1]
    if aggregation == "mean":
        s = sum(P[rows, r, H[r]] for r in range(R)) / R
    elif aggregation == "logmean":
        s = np.exp(sum(np.log(np.maximum(P[rows, r, H[r]], _LOG_EPS)) for r in range(R)) / R)
    elif aggregation == "min":
        s = P[rows, 0, H[0]]
        for r in range(1, R):
            s = np.minimum(s, P[rows, r, H[r]])
    else:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
    s = np.where(valid, s, -np.inf).astype(P.dtype, copy=False)
    pos, val = topk(s, k)
    idx = np.take_along_axis(cand, pos, axis=1)
    return idx, val


def candidate_classes(P, inverted_indices, n_top_buckets):
    """Union over repetitions of the classes in each sample's best buckets.

    Parameters
    ----------
    P : ndarray of shape (n_samples, R, B)
    inverted_indices : list of (indptr, classes) per repetition
        From :meth:`UniversalHashFamily.inverted_index`.
    n_top_buckets : int
        Buckets taken per repetition.

    Returns
    -------
    list of ndarray
        Sorted unique candidate class indices of each sample.
    """
    n, R, B = P.shape
    m = min(n_top_buckets, B)
    out = []
    top_b = [topk(P[:, r, :], m, sort=False)[0] for r in range(R)]
    for i in range(n):
        parts = []
        for r in range(R):
            indptr, cls = inverted_indices[r]
            for b in top_b[r][i]:
                parts.append(cls[indptr[b]:indptr[b + 1]])
        out.append(np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64))
    return out
