"""MACH scoring: NumPy reference and dispatch to the compiled kernels.

:func:`class_scores` and the block-wise top-k of :func:`topk_classes`
(``method="numpy"``) are the plain NumPy references; by default
:func:`topk_classes` runs the compiled kernels of
:mod:`skmach._kernels._mach_scoring` (exact scoring fused with the top-k, or
candidate scoring that is exact by construction), tested against them.

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

from numbers import Integral

import numpy as np

from .._hashing._universal import PermutationFamily, UniversalHashFamily
from .._kernels import _mach_scoring as kern
from .._kernels import numba_threads
from ..utils._topk import check_k, merge_topk, topk

AGGREGATIONS = ("mean", "logmean", "min")
_LOG_EPS = 1e-12


def class_scores(P, hash_family, classes, aggregation="mean", out=None, *, n_jobs=None):
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
    out : ndarray, optional
        Written in place (NumPy reference path).
    n_jobs : int, optional
        Threads of the compiled kernel, used for a :class:`UniversalHashFamily`
        or :class:`PermutationFamily` when ``out`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[[0.9, 0.1], [0.2, 0.8]]])          # 1 sample, R=2, B=2
    >>> H = lambda c: np.array([[0, 1, 0], [1, 0, 0]])[:, c]
    >>> class_scores(P, H, np.arange(3)).round(2).tolist()
    [[0.85, 0.15, 0.55]]
    """
    if (_is_compiled_family(hash_family) and out is None
            and np.asarray(P).dtype in (np.float32, np.float64)):
        return _class_scores_compiled(P, hash_family, classes, aggregation, n_jobs)
    return _class_scores_numpy(P, hash_family, classes, aggregation, out)


def _class_scores_compiled(P, hash_family, classes, aggregation, n_jobs=None):
    """:func:`class_scores` by the compiled kernel (bit-identical)."""
    V = kern.prepare_values(P, aggregation)
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= hash_family.n_classes):
        raise ValueError(f"class indices must be in [0, {hash_family.n_classes})")
    with numba_threads(n_jobs):
        out = kern.dense_scores(V, kern.hash_arrays(hash_family, V.shape[2]), classes,
                                aggregation)
    if aggregation == "logmean":
        np.exp(out, out=out)
    return out


def _class_scores_numpy(P, hash_family, classes, aggregation="mean", out=None):
    """NumPy reference of :func:`class_scores`."""
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


def _rank_keys(P, hash_family, classes, aggregation):
    """Ranking keys of the reference: the scores, except the mean of logs
    (before ``exp``) for ``"logmean"``, so that ``exp`` cannot merge keys."""
    if aggregation != "logmean":
        return class_scores(P, hash_family, classes, aggregation)
    n, R, _ = P.shape
    H = hash_family(classes)
    logP = np.log(np.maximum(P, _LOG_EPS))
    out = np.zeros((n, len(classes)), dtype=logP.dtype)
    for r in range(R):
        out += logP[:, r, :].take(H[r], axis=1)
    out *= logP.dtype.type(1.0 / R)
    return out


def _is_compiled_family(hash_family):
    return isinstance(hash_family, (UniversalHashFamily, PermutationFamily))


def topk_classes(P, hash_family, n_classes, k, aggregation="mean", *,
                 candidates=None, working_memory_mb=256, n_candidate_buckets=None,
                 inverted=None, n_jobs=None, method="auto", return_fallback=False):
    """Top-k classes of each sample, best first (ties: the lower class index).

    With ``method="auto"`` (the default) a :class:`UniversalHashFamily` or
    :class:`PermutationFamily` is scored by the compiled kernels of
    :mod:`skmach._kernels._mach_scoring`: exact scoring fused with the top-k,
    or, when ``n_candidate_buckets`` and ``inverted`` are given, candidate
    scoring that proves its top-k with a bound and scores the samples it
    cannot prove exactly; both give the same classes as exact scoring. Any
    other callable hash uses the NumPy reference (``method="numpy"``), which
    scores classes block by block.

    Parameters
    ----------
    P : ndarray of shape (n_samples, R, B)
    hash_family : callable
    n_classes : int
    k : int
        ``1 <= k <= n_classes``.
    aggregation : {"mean", "logmean", "min"}
        ``"logmean"`` ranks on the mean of float32 logs of ``max(P, 1e-12)``
        and reports its ``exp``.
    candidates : (indptr, classes), optional
        Legacy approximate inference (NumPy): score only these per-sample
        candidates (from :func:`candidate_classes`). Not exact; prefer
        ``n_candidate_buckets``.
    working_memory_mb : float
        Bound on one block of scores (NumPy reference only).
    n_candidate_buckets : int, optional
        Candidate buckets per repetition for exact candidate scoring; needs
        ``inverted``. None: exact scoring of every class.
    inverted : list of (indptr, classes), or stacked pair, optional
        Inverted index of ``hash_family`` (see
        :func:`skmach._kernels._mach_scoring.stack_inverted`, which the
        caller can apply once and reuse).
    n_jobs : int, optional
        Threads of the compiled kernels (joblib semantics; None means 1).
    method : {"auto", "numpy"}
    return_fallback : bool, default=False
        Also return, per sample, whether candidate scoring fell back to exact
        scoring (all False without candidates).

    Returns
    -------
    indices : ndarray of shape (n_samples, k), int64
    scores : ndarray of shape (n_samples, k)
    fallback : ndarray of shape (n_samples,), bool
        Only with ``return_fallback=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import UniversalHashFamily
    >>> fam = UniversalHashFamily(100, 16, 4, np.random.default_rng(0))
    >>> P = np.random.default_rng(1).dirichlet(np.ones(16), size=(3, 4)).astype(np.float32)
    >>> idx, val = topk_classes(P, fam, 100, 5)
    >>> ref_idx, _ = topk_classes(P, fam, 100, 5, method="numpy")
    >>> bool((idx == ref_idx).all())
    True
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
    if method not in ("auto", "numpy"):
        raise ValueError(f"method must be 'auto' or 'numpy'; got {method!r}")
    n_classes = _check_int("n_classes", n_classes, 1)
    k = check_k(k, n_classes)
    if getattr(hash_family, "n_classes", n_classes) != n_classes:
        raise ValueError(f"n_classes={n_classes} but the hash family has "
                         f"{hash_family.n_classes} classes")
    if n_candidate_buckets is not None:
        n_candidate_buckets = _check_int("n_candidate_buckets", n_candidate_buckets, 1)
        if inverted is None:
            raise ValueError("n_candidate_buckets needs the inverted index (inverted=...)")
    compiled = method == "auto" and _is_compiled_family(hash_family) and candidates is None
    if compiled:
        idx, val, fb = _topk_compiled(P, hash_family, n_classes, k, aggregation,
                                      n_candidate_buckets, inverted, n_jobs)
    else:
        P = np.asarray(P)
        if np.isnan(P).any():
            raise ValueError("P contains NaN")
        fb = np.zeros(P.shape[0], dtype=bool)
        if candidates is not None:
            idx, val = _topk_candidates(P, hash_family, candidates, k, aggregation)
        else:
            idx, val = _topk_reference(P, hash_family, n_classes, k, aggregation,
                                       working_memory_mb)
    return (idx, val, fb) if return_fallback else (idx, val)


def _check_int(name, value, low):
    if not isinstance(value, (Integral, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return int(value)


def _topk_compiled(P, hash_family, n_classes, k, aggregation, n_candidate_buckets,
                   inverted, n_jobs):
    V = kern.prepare_values(P, aggregation)
    n, R, B = V.shape
    if R != hash_family.n_repetitions or B != hash_family.n_buckets:
        raise ValueError(f"P has {R} repetitions x {B} buckets; the hash family has "
                         f"{hash_family.n_repetitions} x {hash_family.n_buckets}")
    h = kern.hash_arrays(hash_family, B)
    with numba_threads(n_jobs):
        if n == 0:
            keys = np.empty((0, k), dtype=V.dtype)
            idx = np.empty((0, k), dtype=np.int64)
            fb = np.zeros(0, dtype=bool)
        elif n_candidate_buckets is None:
            keys, idx = kern.topk_exact(V, h, n_classes, k, aggregation)
            fb = np.zeros(n, dtype=bool)
        else:
            keys, idx, fb = kern.topk_candidates(V, h, inverted, n_candidate_buckets, k,
                                                 aggregation)
    if aggregation == "logmean":
        keys = np.exp(keys)
    return idx, keys, fb


def _topk_reference(P, hash_family, n_classes, k, aggregation, working_memory_mb):
    """NumPy reference: score classes block by block, keep a running top-k."""
    n = P.shape[0]
    block = max(k, class_block_size(n, n_classes, working_memory_mb))
    best_idx = best_val = None
    for start in range(0, n_classes, block):
        stop = min(n_classes, start + block)
        s = _rank_keys(P, hash_family, np.arange(start, stop), aggregation)
        kk = min(k, stop - start)
        idx, val = topk(s, kk)
        idx += start
        if best_idx is None:
            best_idx, best_val = idx, val
        else:
            best_idx, best_val = merge_topk(best_idx, best_val, idx, val, k)
    if aggregation == "logmean":
        best_val = np.exp(best_val)
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
                                              aggregation, method="numpy")
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
