"""Compiled MACH scoring fused with the top-k (Numba), exact and by candidates.

The estimator gives, for a chunk of samples, the bucket probabilities ``P``
of shape ``(n, R, B)``. A class ``c`` gets the *key*
``agg_r V[i, r, h_r(c)]`` where ``V = P`` for ``"mean"`` and ``"min"`` and
``V = log(max(P, 1e-12))`` (float32, computed by NumPy before the kernel) for
``"logmean"``; ``"mean"`` and ``"logmean"`` sum over ``r = 0 .. R-1`` in the
dtype of ``P`` and multiply by ``1/R``, exactly as the NumPy reference
(:mod:`skmach.mach._scoring`) does, so the keys are bit-identical to it.
Classes are ranked on the key, ties broken by the lower class index (as
:func:`skmach.utils.topk`); ``"logmean"`` reports ``exp(key)``.

Hash
----
``h_r`` is either an ``(R, K)`` int32 table (:class:`PermutationFamily`
stores one) or the multiply-add-shift function of
:class:`UniversalHashFamily`, computed in the kernel by its Numba twin
:func:`skmach._hashing._universal.mas_bucket`. The exact kernel hashes one
block of classes at a time into a per-thread buffer and scores a tile of
samples against it, so the hashing is paid once per tile, never per sample,
and nothing of size ``K`` is stored.

Exact scoring (:func:`topk_exact`)
----------------------------------
Parallel over tiles of samples. Each sample keeps a running top-k heap
(stored in the output rows); a class enters only when its key beats the
heap's worst. Memory: the ``(n, k)`` output and a ``(block, R)`` buffer per
thread; never an ``n x K`` array.

Candidate scoring, exact by construction (:func:`topk_candidates`)
-------------------------------------------------------------------
Per sample, take each repetition's ``c`` best buckets (``V`` values) and
score the classes they hold (inverted index; a class met again through a
later repetition is skipped, so each is scored once). Let ``t_r`` be the
largest ``V[i, r, :]`` outside repetition ``r``'s chosen buckets. A class
that is not a candidate has, in every repetition, a value at most ``t_r``;
rounded addition and multiplication by ``1/R`` are monotone, so its key is
at most ``U = agg_r t_r`` computed the same way. When the k-th best candidate
key is strictly above ``U`` the candidates' top-k is the exact top-k
(a tie at ``U`` could go to a lower-index outsider, so it is not accepted).
Otherwise, or with fewer than ``k`` candidates, the sample is flagged and
the caller scores it with the exact kernel. The result is therefore always
identical to exact scoring; only the time depends on ``c``.

When candidate scoring is the default
-------------------------------------
Measured in ``benchmarks/results/scoring.md`` (peaked ``P``, R=8, k=5, CPU
seconds): with K=24,288, B=1024 and ``c=8`` candidate scoring takes 2.7-4x
less CPU than exact scoring (which itself takes 5-8x less than the old NumPy
path), no sample left for exact scoring; with K=1M, B=4096, 13-23x less. It
pays when a sample's candidates, about ``R * c * K / B``, are a small part
of ``K``: :func:`default_candidate_buckets` returns ``c=8`` when
``R * c / B <= 1/8`` and ``K >= 4096``, and ``None`` (exact scoring)
otherwise. On flat ``P`` (an untrained model) every sample falls back; a
check before scoring (the best bucket of every repetition cannot beat the
bound) keeps that at about 2x the exact time.
"""

import numpy as np
from numba import njit, prange

from .._hashing._universal import mas_bucket
from . import PARALLEL, SERIAL

AGG_CODES = {"mean": 0, "logmean": 1, "min": 2}
LOG_EPS = 1e-12


# ----------------------------------------------------------------- heap
# A min-heap on "worse": the root is the worst kept entry. (v1, i1) is worse
# than (v2, i2) when v1 < v2, or v1 == v2 and i1 > i2 (the lower index wins).

@njit(inline="always", **SERIAL)
def _worse(v1, i1, v2, i2):
    return v1 < v2 or (v1 == v2 and i1 > i2)


@njit(**SERIAL)
def _sift_down(vals, idx, pos, size):
    v = vals[pos]
    ix = idx[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(vals[right], idx[right], vals[child], idx[child]):
            child = right
        if _worse(vals[child], idx[child], v, ix):
            vals[pos] = vals[child]
            idx[pos] = idx[child]
            pos = child
        else:
            break
    vals[pos] = v
    idx[pos] = ix


@njit(**SERIAL)
def _push(vals, idx, size, v, c):
    """Offer (v, c) to a heap of capacity ``len(vals)``; return its new size."""
    k = vals.shape[0]
    if size < k:
        pos = size
        while pos > 0:  # sift up
            parent = (pos - 1) // 2
            if _worse(v, c, vals[parent], idx[parent]):
                vals[pos] = vals[parent]
                idx[pos] = idx[parent]
                pos = parent
            else:
                break
        vals[pos] = v
        idx[pos] = c
        return size + 1
    if _worse(vals[0], idx[0], v, c):
        vals[0] = v
        idx[0] = c
        _sift_down(vals, idx, 0, size)
    return size


@njit(**SERIAL)
def _heap_sort(vals, idx, size):
    """Sort a heap in place, best first."""
    for end in range(size - 1, 0, -1):
        v, ix = vals[0], idx[0]
        vals[0], idx[0] = vals[end], idx[end]
        vals[end], idx[end] = v, ix
        _sift_down(vals, idx, 0, end)


# -------------------------------------------------------------- scoring

@njit(inline="always", **SERIAL)
def _bucket(x, r, table, a, b, use_table, nb):
    if use_table:
        return np.int64(table[r, x])
    return np.int64(mas_bucket(np.uint64(x), a[r], b[r], nb))


@njit(**SERIAL)
def _fill_block(buf, c0, nc, table, a, b, use_table, nb):
    R = buf.shape[1]
    for j in range(nc):
        for r in range(R):
            buf[j, r] = _bucket(c0 + j, r, table, a, b, use_table, nb)


@njit(**SERIAL)
def _score_block(V, i, buf, c0, nc, agg, inv_r, vals, idx, size):
    """Offer classes ``c0 .. c0+nc-1`` (buckets in ``buf``) to sample i's heap."""
    R = V.shape[1]
    k = vals.shape[0]
    if size == k:
        thr = vals[0]
    else:
        thr = -np.inf
    for j in range(nc):
        if agg == 2:
            s = V[i, 0, buf[j, 0]]
            for r in range(1, R):
                w = V[i, r, buf[j, r]]
                if w < s:
                    s = w
        else:
            s = V[i, 0, buf[j, 0]]
            for r in range(1, R):
                s += V[i, r, buf[j, r]]
            s = s * inv_r
        if s < thr:  # classes come in increasing order: a tie never enters
            continue
        if size == k and s == thr:
            continue
        size = _push(vals, idx, size, s, c0 + j)
        if size == k:
            thr = vals[0]
    return size


@njit(**PARALLEL)
def _topk_exact_kernel(V, rows, table, a, b, use_table, nb, n_classes, agg, inv_r,
                       tile, block, out_val, out_idx):
    """Exact top-k of samples ``rows`` of V into rows of out_val/out_idx."""
    n = rows.shape[0]
    R = V.shape[1]
    k = out_val.shape[1]
    n_tiles = (n + tile - 1) // tile
    for t in prange(n_tiles):
        i0 = t * tile
        i1 = min(n, i0 + tile)
        buf = np.empty((block, R), dtype=np.int32)
        sizes = np.zeros(i1 - i0, dtype=np.int64)
        for c0 in range(0, n_classes, block):
            nc = min(block, n_classes - c0)
            _fill_block(buf, c0, nc, table, a, b, use_table, nb)
            for q in range(i0, i1):
                i = rows[q]
                sizes[q - i0] = _score_block(V, i, buf, c0, nc, agg, inv_r,
                                             out_val[i], out_idx[i], sizes[q - i0])
        for q in range(i0, i1):
            i = rows[q]
            _heap_sort(out_val[i], out_idx[i], sizes[q - i0])


@njit(**PARALLEL)
def _dense_scores_kernel(V, classes, table, a, b, use_table, nb, agg, inv_r, tile, block, out):
    """Keys of ``classes`` for every sample into ``out`` (n, len(classes))."""
    n, R, _ = V.shape
    m = classes.shape[0]
    n_tiles = (n + tile - 1) // tile
    for t in prange(n_tiles):
        buf = np.empty((block, R), dtype=np.int32)
        for c0 in range(0, m, block):
            nc = min(block, m - c0)
            for j in range(nc):
                for r in range(R):
                    buf[j, r] = _bucket(np.int64(classes[c0 + j]), r, table, a, b, use_table, nb)
            for i in range(t * tile, min(n, (t + 1) * tile)):
                for j in range(nc):
                    s = V[i, 0, buf[j, 0]]
                    if agg == 2:
                        for r in range(1, R):
                            w = V[i, r, buf[j, r]]
                            if w < s:
                                s = w
                    else:
                        for r in range(1, R):
                            s += V[i, r, buf[j, r]]
                        s = s * inv_r
                    out[i, c0 + j] = s


def dense_scores(V, hash_arrays_, classes, aggregation, out=None, *, tile=8, block=2048):
    """Keys of the given classes for every sample, shape (n, len(classes)).

    ``exp`` of the keys gives the ``"logmean"`` scores. ``out`` (C-contiguous,
    dtype of ``V``) is filled when given.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import PermutationFamily
    >>> fam = PermutationFamily(3, 2, np.random.default_rng(0))
    >>> V = np.full((1, 2, 3), 0.5, dtype=np.float32)
    >>> dense_scores(V, hash_arrays(fam, 3), np.arange(3), "mean").tolist()
    [[0.5, 0.5, 0.5]]
    """
    classes = np.ascontiguousarray(classes, dtype=np.int64)
    if out is None:
        out = np.empty((V.shape[0], len(classes)), dtype=V.dtype)
    table, a, b, use_table, nb = hash_arrays_
    block = int(max(1, min(block, len(classes))))
    if V.shape[0] and len(classes):
        _dense_scores_kernel(V, classes, table, a, b, use_table, nb, AGG_CODES[aggregation],
                             _inv_r(V), int(tile), block, out)
    return out


@njit(**SERIAL)
def _select_buckets(row, m, top_b, top_v):
    """The ``m`` largest entries of ``row`` into ``top_b``; return the next one.

    ``top_v`` is scratch of length ``m + 1``. Returns the largest value of the
    buckets not chosen (``-inf`` when ``m == len(row)``).
    """
    B = row.shape[0]
    cnt = 0
    cap = min(m + 1, B)
    for bk in range(B):
        v = row[bk]
        if cnt == cap:
            if not v > top_v[cap - 1]:
                continue
            pos = cap - 1
        else:
            pos = cnt
            cnt += 1
        while pos > 0 and v > top_v[pos - 1]:
            top_v[pos] = top_v[pos - 1]
            top_b[pos] = top_b[pos - 1]
            pos -= 1
        top_v[pos] = v
        top_b[pos] = bk
    if m < B:
        return top_v[m]
    return -np.inf


@njit(**PARALLEL)
def _topk_candidates_kernel(V, table, a, b, use_table, nb, inv_ptr, inv_cls, m, agg,
                            inv_r, chunk, out_val, out_idx, ok):
    n, R, B = V.shape
    k = out_val.shape[1]
    n_chunks = (n + chunk - 1) // chunk
    for t in prange(n_chunks):
        sel = np.zeros((R, B), dtype=np.bool_)
        top_b = np.empty((R, m + 1), dtype=np.int64)
        top_v = np.empty(m + 1, dtype=V.dtype)
        thr = np.empty(R, dtype=V.dtype)
        hb = np.empty(R, dtype=np.int64)
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            for r in range(R):
                thr[r] = _select_buckets(V[i, r], m, top_b[r], top_v)
                for j in range(m):
                    sel[r, top_b[r, j]] = True
            vals = out_val[i]
            idx = out_idx[i]
            size = 0
            # bound on every non-candidate class (computed as its key would
            # be), and on every class at all (the best bucket of each repetition)
            u = thr[0]
            best = V[i, 0, top_b[0, 0]]
            for r in range(1, R):
                w = V[i, r, top_b[r, 0]]
                if agg == 2:
                    u = min(u, thr[r])
                    best = min(best, w)
                else:
                    u += thr[r]
                    best += w
            if agg != 2:
                u = u * inv_r
                best = best * inv_r
            hopeless = not best > u  # no candidate can beat the bound (flat P)
            for r in range(R):
                if hopeless:
                    break
                for j in range(m):
                    bk = top_b[r, j]
                    for p in range(inv_ptr[r, bk], inv_ptr[r, bk + 1]):
                        x = np.int64(inv_cls[r, p])
                        seen = False
                        for rr in range(r):  # met through an earlier repetition?
                            hb[rr] = _bucket(x, rr, table, a, b, use_table, nb)
                            if sel[rr, hb[rr]]:
                                seen = True
                                break
                        if seen:
                            continue
                        hb[r] = bk
                        for rr in range(r + 1, R):
                            hb[rr] = _bucket(x, rr, table, a, b, use_table, nb)
                        s = V[i, 0, hb[0]]
                        if agg == 2:
                            for rr in range(1, R):
                                w = V[i, rr, hb[rr]]
                                if w < s:
                                    s = w
                        else:
                            for rr in range(1, R):
                                s += V[i, rr, hb[rr]]
                            s = s * inv_r
                        if size < k or not s < vals[0]:
                            size = _push(vals, idx, size, s, x)
            ok[i] = (not hopeless) and size == k and vals[0] > u
            if ok[i]:
                _heap_sort(vals, idx, size)
            for r in range(R):
                for j in range(m):
                    sel[r, top_b[r, j]] = False


# ------------------------------------------------------------- wrappers

def prepare_values(P, aggregation):
    """Validated, C-contiguous ``V`` (P, or its float32 log for logmean).

    Raises
    ------
    ValueError
        For a ``P`` that is not 3-D, or holds NaN, or an unknown aggregation.
    TypeError
        For a ``P`` that is not a real floating array.

    Examples
    --------
    >>> import numpy as np
    >>> prepare_values(np.ones((1, 2, 3), np.float32), "logmean").max()
    np.float32(0.0)
    """
    if aggregation not in AGG_CODES:
        raise ValueError(f"aggregation must be one of {tuple(AGG_CODES)}; got {aggregation!r}")
    P = np.asarray(P)
    if P.ndim != 3:
        raise ValueError(f"P must have shape (n_samples, R, B); got shape {P.shape}")
    if not np.issubdtype(P.dtype, np.floating):
        raise TypeError(f"P must be a floating array; got dtype {P.dtype}")
    if P.dtype not in (np.float32, np.float64):
        P = P.astype(np.float64)
    if np.isnan(P).any():
        raise ValueError("P contains NaN")
    if aggregation == "logmean":
        return np.log(np.maximum(P, LOG_EPS))
    return np.ascontiguousarray(P)


def hash_arrays(hash_family, n_buckets):
    """``(table, a, b, use_table, nb)`` for the kernels.

    A :class:`PermutationFamily` (anything with a ``table``) gives its table as
    int32; a :class:`UniversalHashFamily` (``a`` and ``b``) is hashed in the
    kernel.
    """
    R = hash_family.n_repetitions
    if hasattr(hash_family, "table"):
        table = np.ascontiguousarray(hash_family.table, dtype=np.int32)
        z = np.zeros(R, dtype=np.uint64)
        return table, z, z, True, np.uint64(n_buckets)
    table = np.zeros((R, 1), dtype=np.int32)
    a = np.ascontiguousarray(hash_family.a, dtype=np.uint64)
    b = np.ascontiguousarray(hash_family.b, dtype=np.uint64)
    return table, a, b, False, np.uint64(n_buckets)


def _inv_r(V):
    return V.dtype.type(1.0 / V.shape[1])


def topk_exact(V, hash_arrays_, n_classes, k, aggregation, *, rows=None, out=None,
               tile=None, block=2048):
    """Exact top-k keys of every class, per sample (compiled).

    Parameters
    ----------
    V : ndarray of shape (n, R, B)
        From :func:`prepare_values`.
    hash_arrays_ : tuple
        From :func:`hash_arrays`.
    n_classes, k : int
    aggregation : {"mean", "logmean", "min"}
    rows : ndarray of int64, optional
        Score only these samples (their rows of ``out`` are written).
    out : (keys, indices), optional
        Output arrays of shape (n, k); allocated when not given.
    tile, block : int
        Samples per tile (default: up to 16, fewer for small ``n``) and
        classes per hashed block.

    Returns
    -------
    keys : ndarray of shape (n, k), dtype of V
        Ranking keys, best first (``exp`` gives the logmean score).
    indices : ndarray of shape (n, k), int64

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import PermutationFamily
    >>> V = np.array([[[0.1, 0.6, 0.3]]], dtype=np.float32)
    >>> fam = PermutationFamily(3, 1, np.random.default_rng(0))
    >>> keys, idx = topk_exact(V, hash_arrays(fam, 3), 3, 1, "mean")
    >>> bool(fam.table[0, idx[0, 0]] == 1)
    True
    """
    import numba

    n = V.shape[0]
    if out is None:
        out = (np.full((n, k), -np.inf, dtype=V.dtype), np.full((n, k), -1, dtype=np.int64))
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if tile is None:
        per_thread = -(-len(rows) // max(1, 4 * numba.get_num_threads()))
        tile = int(max(1, min(16, per_thread)))
    block = int(max(1, min(block, n_classes)))
    table, a, b, use_table, nb = hash_arrays_
    _topk_exact_kernel(V, rows, table, a, b, use_table, nb, int(n_classes),
                       AGG_CODES[aggregation], _inv_r(V), int(tile), block, out[0], out[1])
    return out


def stack_inverted(inverted):
    """``(inv_ptr (R, B+1) int64, inv_cls (R, K))`` from a list of per-repetition
    ``(indptr, classes)`` pairs; an already stacked pair is returned as is."""
    if isinstance(inverted, tuple) and len(inverted) == 2 and np.ndim(inverted[0]) == 2:
        return inverted
    ptr = np.ascontiguousarray(np.stack([p for p, _ in inverted]), dtype=np.int64)
    cls = np.ascontiguousarray(np.stack([c for _, c in inverted]))
    if cls.dtype not in (np.int32, np.int64):
        cls = cls.astype(np.int64)
    return ptr, cls


def topk_candidates(V, hash_arrays_, inverted, n_top_buckets, k, aggregation, *, chunk=32,
                    widen=4):
    """Top-k by candidates with a proof, exact scoring where the proof fails.

    Parameters
    ----------
    V : ndarray of shape (n, R, B)
        From :func:`prepare_values`.
    hash_arrays_ : tuple
        From :func:`hash_arrays`.
    inverted : list of (indptr, classes) or stacked pair
        Inverted index of the hash (:func:`stack_inverted`).
    n_top_buckets : int
        Buckets taken per repetition, ``c >= 1``.
    k : int
    aggregation : {"mean", "logmean", "min"}
    chunk : int
        Samples per parallel task.
    widen : int, default=4
        Samples the bound cannot settle are tried once more with
        ``widen * n_top_buckets`` buckets (while those candidates stay under
        half the classes) before exact scoring. A sample whose best buckets
        cannot beat the bound (flat ``P``) goes straight to exact scoring.

    Returns
    -------
    keys : ndarray of shape (n, k)
    indices : ndarray of shape (n, k), int64
    fallback : ndarray of shape (n,), bool
        Samples that no candidate pass could settle, scored exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import UniversalHashFamily
    >>> fam = UniversalHashFamily(50, 8, 3, np.random.default_rng(0), distinct=False)
    >>> V = np.random.default_rng(1).dirichlet(np.ones(8) * 0.1, size=(4, 3))
    >>> inv = [fam.inverted_index(r) for r in range(3)]
    >>> h = hash_arrays(fam, 8)
    >>> keys, idx, fb = topk_candidates(V, h, inv, 2, 3, "mean")
    >>> bool((idx == topk_exact(V, h, 50, 3, "mean")[1]).all())
    True
    """
    n, R, B = V.shape
    inv_ptr, inv_cls = stack_inverted(inverted)
    if inv_ptr.shape != (R, B + 1):
        raise ValueError(f"inverted index has shape {inv_ptr.shape[0]} x {inv_ptr.shape[1] - 1} "
                         f"(repetitions x buckets); P has {R} x {B}")
    n_classes = inv_cls.shape[1]
    m = int(min(n_top_buckets, B))
    keys = np.full((n, k), -np.inf, dtype=V.dtype)
    idx = np.full((n, k), -1, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    table, a, b, use_table, nb = hash_arrays_
    _topk_candidates_kernel(V, table, a, b, use_table, nb, inv_ptr, inv_cls, m,
                            AGG_CODES[aggregation], _inv_r(V), int(chunk), keys, idx, ok)
    rows = np.flatnonzero(~ok)
    m2 = m * int(widen)
    if len(rows) and widen > 1 and m < B and R * m2 <= B // 2:
        # the bound failed: one more try with wider candidates on those rows
        k2, i2, f2 = topk_candidates(np.ascontiguousarray(V[rows]), hash_arrays_,
                                     (inv_ptr, inv_cls), m2, k, aggregation, chunk=chunk,
                                     widen=1)
        keys[rows], idx[rows] = k2, i2
        rows = rows[f2]
    fallback = np.zeros(n, dtype=bool)
    fallback[rows] = True
    if len(rows):
        keys[rows] = -np.inf
        idx[rows] = -1
        topk_exact(V, hash_arrays_, n_classes, k, aggregation, rows=rows, out=(keys, idx))
    return keys, idx, fallback


def default_candidate_buckets(n_classes, n_buckets, n_repetitions, c=8):
    """Buckets per repetition for candidate scoring, or None for exact scoring.

    Candidate scoring is chosen only where it was measured faster
    (``benchmarks/results/scoring.md``): ``n_classes >= 4096`` and candidates
    at most an eighth of the classes, ``R * c / B <= 1/8``.

    Examples
    --------
    >>> default_candidate_buckets(24288, 1024, 8)
    8
    >>> default_candidate_buckets(100, 32, 8) is None
    True
    """
    if n_classes >= 4096 and n_repetitions * c * 8 <= n_buckets:
        return c
    return None
