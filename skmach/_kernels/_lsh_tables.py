"""Compiled LSH kernels: hashing driven by non-zeros, bounded-bucket tables,
retrieval and active-set selection without sorting.

- **Hashing.** :func:`dwta_dense` / :func:`dwta_ragged` compute the same
  densified WTA codes as :meth:`skmach._hashing.DWTAHash.hash` (its NumPy
  reference); the ragged version visits only the input's non-zeros through
  the inverse map *coordinate -> (hash, position)* (SLIDE's sparse DWTA).
  :func:`simhash_ragged` sums the projection rows of the non-zeros. Inputs
  are hashed as ``[x, 1]``: the extra coordinate ``d`` (value 1) stands for
  the bias, so the hashed similarity tracks ``w.x + b``.
- **Tables.** ``L`` tables of ``n_buckets`` buckets are one bucket-offset
  array ``ptr`` (``L * n_buckets + 1``) over a neuron array ``ids``; a bucket
  keeps at most ``cap`` neurons (the first ones in a random order given at
  build time, as SLIDE's reservoir). Codes wider than the bucket range are
  folded with a multiplicative hash.
- **Retrieval + selection.** :func:`query_select` visits, for each sample
  (in parallel), its ``L`` buckets, counts the collisions of each neuron in a
  per-thread count array, and keeps the ``budget`` neurons with the most
  collisions from a histogram of the counts (no sort): all neurons above the
  threshold count, then ties from a random (training) or fixed (prediction)
  start. Forced neurons (true labels) are always kept. Rows short of
  ``n_pad`` neurons are padded from a fixed permutation. The number of
  bucket entries examined per sample is returned, which is what makes the
  retrieval cost visible (sublinear when the buckets are small).

Per-sample randomness comes from a per-sample seed, so the result does not
depend on the number of threads.
"""

import numpy as np
from numba import njit, prange

from . import PARALLEL, SERIAL

# numpy's error model (no zero-division checks) lets LLVM vectorise the loops
SERIAL = {**SERIAL, "error_model": "numpy"}
PARALLEL = {**PARALLEL, "error_model": "numpy"}

SEL_TOPK, SEL_UNION, SEL_THRESHOLD, SEL_SAMPLE = 0, 1, 2, 3
SELECTIONS = {"topk": SEL_TOPK, "union": SEL_UNION, "threshold": SEL_THRESHOLD,
              "sample": SEL_SAMPLE}


# --------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------
@njit(**SERIAL)
def _dwta_finish(h, empty, probes, bin_size, K, L, codes_row):
    H = h.shape[0]
    for hh in range(H):
        if empty[hh]:
            val = 0
            for t in range(probes.shape[1]):
                src = probes[hh, t]
                if not empty[src]:
                    val = (h[src] + t + 1) % bin_size
                    break
            h[hh] = val
    # empty flags refer to own values; borrowed values were written after all
    # sources were read only from non-empty bins, as in the reference.
    for t in range(L):
        code = 0
        w = 1
        for k in range(K):
            code += h[t * K + k] * w
            w *= bin_size
        codes_row[t] = code


@njit(**PARALLEL)
def dwta_dense(X, bins, probes, K, L, codes):
    """DWTA codes of the rows of dense ``X`` augmented with a coordinate 1."""
    n, d = X.shape
    H, B = bins.shape
    n_chunks = min(n, 64)
    for ch in prange(n_chunks):
        h = np.zeros(H, dtype=np.int64)
        empty = np.zeros(H, dtype=np.bool_)
        # the row as argmax keys, zeros (never a winner) as -inf, then the 1:
        # the bins' loop below is a plain gather without branches on the
        # coordinate (9x faster than testing each coordinate in the loop)
        keys = np.empty(d + 1, dtype=np.float64)
        keys[d] = 1.0
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            for c in range(d):
                v = np.float64(X[i, c])
                keys[c] = v if v != 0 else -np.inf
            for hh in range(H):
                best = -np.inf
                arg = -1
                for p in range(B):
                    key = keys[bins[hh, p]]
                    if key > best:
                        best = key
                        arg = p
                empty[hh] = arg < 0
                h[hh] = arg if arg >= 0 else 0
            _dwta_finish(h, empty, probes, B, K, L, codes[i])


@njit(**PARALLEL)
def dwta_ragged(xs, xe, xi, xv, d, cptr, cent, H, B, probes, K, L, codes):
    """DWTA codes of ragged rows augmented with coordinate ``d`` = 1, visiting
    only the non-zeros (``cent[cptr[c]:cptr[c+1]]`` = ``hash * B + position``
    of the bin slots holding coordinate ``c``)."""
    for i in prange(len(xs)):
        best = np.full(H, -np.inf)
        h = np.full(H, -1, dtype=np.int64)
        for q in range(xs[i], xe[i] + 1):
            if q < xe[i]:
                c = xi[q]
                v = xv[q]
            else:
                c = d
                v = 1.0
            if v == 0:
                continue
            for u in range(cptr[c], cptr[c + 1]):
                hh = cent[u] // B
                p = cent[u] % B
                if v > best[hh] or (v == best[hh] and p < h[hh]):
                    best[hh] = v
                    h[hh] = p
        empty = h < 0
        for hh in range(H):
            if empty[hh]:
                h[hh] = 0
        _dwta_finish(h, empty, probes, B, K, L, codes[i])


def dwta_inverse(bins, n_coords):
    """``cptr, cent``: for each coordinate, the ``hash * B + position`` slots."""
    H, B = bins.shape
    flat = bins.ravel()
    order = np.argsort(flat, kind="stable")
    cptr = np.zeros(n_coords + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=n_coords), out=cptr[1:])
    return cptr, order.astype(np.int64)


@njit(**PARALLEL)
def simhash_ragged(xs, xe, xi, xv, P, K, L, codes):
    """SimHash codes of ragged rows augmented with a last coordinate 1
    (``P`` has ``d + 1`` rows)."""
    d = P.shape[0] - 1
    for i in prange(len(xs)):
        acc = P[d].astype(np.float64)
        for q in range(xs[i], xe[i]):
            acc += xv[q] * P[xi[q]]
        for t in range(L):
            code = 0
            for k in range(K):
                if acc[t * K + k] > 0:
                    code |= 1 << k
            codes[i, t] = code


@njit(**PARALLEL)
def simhash_bits(proj, K, L, codes):
    """Codes from dense projections ``proj`` ``(n, K * L)``."""
    for i in prange(proj.shape[0]):
        for t in range(L):
            code = 0
            for k in range(K):
                if proj[i, t * K + k] > 0:
                    code |= 1 << k
            codes[i, t] = code


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fold_codes(codes, n_codes, log2_buckets):
    """Bucket of each code: the code itself when it fits, else a multiplicative hash."""
    if n_codes <= (1 << log2_buckets):
        return codes
    with np.errstate(over="ignore"):
        h = codes.astype(np.uint64) * _GOLDEN
    return (h >> np.uint64(64 - log2_buckets)).astype(np.int64)


@njit(**SERIAL)
def build_tables(buckets, n_buckets, cap, order):
    """Bounded-bucket tables from ``buckets`` ``(n_neurons, L)``.

    Neurons are inserted in the order ``order``; a bucket keeps the first
    ``cap``. Returns ``ptr`` (``L * n_buckets + 1``) and ``ids``.
    """
    N, L = buckets.shape
    nb = L * n_buckets
    count = np.zeros(nb + 1, dtype=np.int64)
    for o in range(N):
        for t in range(L):
            count[t * n_buckets + buckets[o, t] + 1] += 1
    for k in range(nb):
        c = count[k + 1]
        count[k + 1] = count[k] + (c if c < cap else cap)
    ptr = count
    fill = ptr[:-1].copy()
    ids = np.empty(ptr[nb], dtype=np.int32)
    for u in range(N):
        o = order[u]
        for t in range(L):
            k = t * n_buckets + buckets[o, t]
            if fill[k] < ptr[k + 1]:
                ids[fill[k]] = o
                fill[k] += 1
    return ptr, ids


def build_tables_ref(buckets, n_buckets, cap, order):
    """NumPy reference of :func:`build_tables` (lists of neurons per bucket)."""
    N, L = buckets.shape
    out = [[] for _ in range(L * n_buckets)]
    for o in order:
        for t in range(L):
            k = t * n_buckets + buckets[o, t]
            if len(out[k]) < cap:
                out[k].append(int(o))
    return out


# --------------------------------------------------------------------------
# Retrieval and selection
# --------------------------------------------------------------------------
@njit(**SERIAL)
def _xorshift(state):
    x = state[0]
    x ^= (x << np.uint64(13))
    x ^= (x >> np.uint64(7))
    x ^= (x << np.uint64(17))
    state[0] = x
    return x


@njit(**SERIAL)
def _uniform(state):
    return (_xorshift(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**PARALLEL)
def query_select(ptr, ids, qb, n_buckets, n_out, budget, n_pad, fptr, flab,
                 selection, threshold, train, seeds, pad_perm, n_chunks,
                 idx, cnt, fmask, examined, distinct, n_sel):
    """Active sets of ``n`` samples from their bucket ids ``qb`` ``(n, L)``.

    Writes ``idx[i, :cnt[i]]`` (neurons), ``fmask`` (slot holds a forced
    neuron ``flab[fptr[i]:fptr[i+1]]``), ``examined[i]`` (bucket entries
    visited), ``distinct[i]`` (distinct neurons retrieved) and ``n_sel[i]``
    (slots filled before the padding: ``idx[i, n_sel[i]:cnt[i]]`` are the
    padding neurons, a uniform draw among the ones not selected).
    """
    n, L = qb.shape
    FORCED = L + 1
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    for ch in prange(n_chunks):
        score = np.zeros(n_out, dtype=np.int32)
        cand = np.empty(n_out, dtype=np.int32)
        hist = np.zeros(L + 2, dtype=np.int64)
        state = np.zeros(1, dtype=np.uint64)
        for i in range(bounds[ch], bounds[ch + 1]):
            state[0] = seeds[i] | np.uint64(1)
            nc = 0
            for u in range(fptr[i], fptr[i + 1]):
                o = flab[u]
                if score[o] == 0:
                    cand[nc] = o
                    nc += 1
                score[o] = FORCED
            ex = 0
            for t in range(L):
                k = t * n_buckets + qb[i, t]
                for p in range(ptr[k], ptr[k + 1]):
                    o = ids[p]
                    ex += 1
                    sc = score[o]
                    if sc == 0:
                        cand[nc] = o
                        nc += 1
                    if sc < FORCED:
                        score[o] = sc + 1
            examined[i] = ex
            distinct[i] = nc
            # selection scores
            for h in range(L + 2):
                hist[h] = 0
            n_forced = 0
            for c in range(nc):
                o = cand[c]
                sc = score[o]
                if sc == FORCED:
                    n_forced += 1
                elif selection == 1:
                    sc = 1
                elif selection == 2 and sc < threshold:
                    sc = 0
                score[o] = sc
                hist[sc] += 1
            w = 0
            keep = budget if budget > n_forced else n_forced
            if selection == 3 and train:
                # weighted sampling without replacement (exponential keys)
                m = 0
                keys = np.empty(nc, dtype=np.float64)
                for c in range(nc):
                    sc = score[cand[c]]
                    if sc == FORCED:
                        keys[c] = -1.0
                    elif sc > 0:
                        keys[c] = -np.log(1.0 - _uniform(state)) / sc
                        m += 1
                    else:
                        keys[c] = np.inf
                m += n_forced
                take = keep if keep < m else m
                if take > 0:
                    kth = np.partition(keys, take - 1)[take - 1]
                    for c in range(nc):
                        if keys[c] <= kth and w < take:
                            o = cand[c]
                            idx[i, w] = o
                            fmask[i, w] = score[o] == FORCED
                            w += 1
            else:
                # threshold score from the histogram (counts > 0)
                tot = 0
                thr = L + 1
                found = False
                while thr >= 1:
                    if tot + hist[thr] >= keep:
                        found = True
                        break
                    tot += hist[thr]
                    thr -= 1
                if found:
                    rem = keep - tot  # ties to take at score == thr
                else:  # fewer retrieved than the budget: take them all
                    thr = 1
                    rem = hist[1]
                for c in range(nc):
                    o = cand[c]
                    if score[o] > thr:
                        idx[i, w] = o
                        fmask[i, w] = score[o] == FORCED
                        w += 1
                if rem > 0:
                    start = int(_uniform(state) * nc) if train else 0
                    for c0 in range(nc):
                        c = (start + c0) % nc
                        o = cand[c]
                        if score[o] == thr and rem > 0:
                            idx[i, w] = o
                            fmask[i, w] = thr == FORCED
                            w += 1
                            rem -= 1
            # mark selected, reset the others
            for c in range(nc):
                score[cand[c]] = 0
            for c in range(w):
                score[idx[i, c]] = 1
            n_sel[i] = w
            if w < n_pad:
                start = int(_uniform(state) * n_out) if train else 0
                c0 = 0
                while w < n_pad and c0 < n_out:
                    o = pad_perm[(start + c0) % n_out]
                    if score[o] == 0:
                        idx[i, w] = o
                        fmask[i, w] = False
                        score[o] = 1
                        w += 1
                    c0 += 1
            for c in range(w):
                score[idx[i, c]] = 0
            cnt[i] = w


def query_select_ref(tables, qb, n_buckets, n_out, budget, fptr, flab, L):
    """NumPy reference of ``query_select`` (topk, prediction mode, no padding):
    the set of neurons kept per sample, and the entries examined."""
    out, ex = [], []
    for i in range(qb.shape[0]):
        counts = {}
        forced = set(flab[fptr[i]:fptr[i + 1]].tolist())
        e = 0
        for t in range(L):
            b = tables[t * n_buckets + qb[i, t]]
            e += len(b)
            for o in b:
                counts[o] = counts.get(o, 0) + 1
        for o in forced:
            counts[o] = L + 1
        keep = max(budget, len(forced))
        vals = sorted(counts.values(), reverse=True)
        if len(vals) <= keep:
            out.append(set(counts))
        else:
            thr = vals[keep - 1]
            above = {o for o, c in counts.items() if c > thr}
            ties = [o for o, c in counts.items() if c == thr]
            out.append((above, ties, keep - len(above)))
        ex.append(e)
    return out, np.array(ex)
