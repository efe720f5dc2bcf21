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
- **Re-ranking.** :func:`rerank_select` keeps, of a sample's candidates,
  those with the largest scores in a low-dimensional sketch (the inner
  product ``S0[o] + S[o] @ q``; the network's first layer uses a principal
  subspace of its input, ``SparseNetwork.fit_sketch`` in
  :mod:`skmach.neural_network._base`), the threshold by
  the radix select :func:`kth_largest`; :func:`sketch_ragged` computes the
  query side ``q`` from a sparse input's non-zeros. A re-ranking layer runs
  both steps sample by sample in one parallel region, :func:`query_rerank`
  (tested equal to :func:`query_select` then :func:`rerank_select`, which
  holds the re-ranking's own tests).

Per-sample randomness comes from a per-sample seed, so the result does not
depend on the number of threads.
"""

import numpy as np
from numba import njit, prange

from . import PARALLEL, SERIAL
from ._prefetch import prefetch

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


@njit(**SERIAL)
def _select_one(i, ptr, ids, qb, n_buckets, n_out, budget, n_pad, fptr, flab, fpos,
                selection, threshold, train, seeds, pad_perm, score, pos, cand, hist, state,
                idx_row, fmask_row):
    """Sample ``i``'s active set (:func:`query_select`, one sample): writes
    ``idx_row[:w]`` and ``fmask_row[:w]``, returns ``(w, entries examined,
    distinct neurons, slots filled before the padding)``. ``score``, ``pos``,
    ``cand``, ``hist``, ``state``: the caller's scratch; ``score`` and ``pos``
    are all zero on entry and left so."""
    L = qb.shape[1]
    FORCED = L + 1
    state[0] = seeds[i] | np.uint64(1)
    nc = 0
    for u in range(fptr[i], fptr[i + 1]):
        o = flab[u]
        if score[o] == 0:
            cand[nc] = o
            nc += 1
        score[o] = FORCED
        if u < fptr[i] + fpos[i]:
            pos[o] = True
    n_forced = nc  # distinct forced neurons
    ex = 0
    for t in range(L):
        k = t * n_buckets + qb[i, t]
        ex += ptr[k + 1] - ptr[k]
        for p in range(ptr[k], ptr[k + 1]):
            # branch-free (first sightings are unpredictable)
            o = ids[p]
            sc = score[o]
            cand[nc] = o
            nc += sc == 0
            score[o] = sc + (sc < FORCED)
    w = 0
    keep = budget if budget > n_forced else n_forced
    if selection == 0 and nc <= keep:
        # every candidate fits (the rule below would take them all,
        # in another order): one pass, and the random draw the tie
        # rule makes (when a candidate has one collision, or exactly
        # the budget is retrieved), so that the padding below draws the
        # same; no histogram
        draw = train and nc > 0 and nc == keep
        for c in range(nc):
            o = cand[c]
            idx_row[w] = o
            fmask_row[w] = pos[o]
            draw |= train and score[o] == 1
            w += 1
        if draw:
            _uniform(state)
        return _finish_select(i, nc, w, ex, fptr, flab, n_out, n_pad, train, pad_perm, score,
                              pos, cand, state, idx_row, fmask_row)
    # selection scores
    for h in range(L + 2):
        hist[h] = 0
    for c in range(nc):
        o = cand[c]
        sc = score[o]
        if sc != FORCED:
            if selection == 1:
                sc = 1
            elif selection == 2 and sc < threshold:
                sc = 0
            score[o] = sc
        hist[sc] += 1
    if selection == 3 and train and nc <= keep:
        # every candidate is drawn: all of them, in order, and the
        # random draws the sampling below makes (same model)
        for c in range(nc):
            o = cand[c]
            idx_row[w] = o
            fmask_row[w] = pos[o]
            if score[o] != FORCED:
                _uniform(state)
            w += 1
    elif selection == 3 and train:
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
                    idx_row[w] = o
                    fmask_row[w] = pos[o]
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
                idx_row[w] = o
                fmask_row[w] = pos[o]
                w += 1
        if rem > 0:
            start = int(_uniform(state) * nc) if train else 0
            # cand[start:], then cand[:start] (two ranges: no modulo)
            for c in range(start, nc + start):
                if rem == 0:
                    break
                o = cand[c if c < nc else c - nc]
                if score[o] == thr:
                    idx_row[w] = o
                    fmask_row[w] = pos[o]
                    w += 1
                    rem -= 1
    return _finish_select(i, nc, w, ex, fptr, flab, n_out, n_pad, train, pad_perm, score, pos,
                          cand, state, idx_row, fmask_row)


@njit(**SERIAL)
def _finish_select(i, nc, w, ex, fptr, flab, n_out, n_pad, train, pad_perm, score, pos, cand,
                   state, idx_row, fmask_row):
    """The end of :func:`_select_one`: resets the scratch and pads the
    ``w`` selected slots up to ``n_pad``; returns its result."""
    for c in range(nc):
        score[cand[c]] = 0
    for u in range(fptr[i], fptr[i + 1]):
        pos[flab[u]] = False
    n_sel = w
    if w < n_pad:
        # mark the selected ones, pad with the others, reset
        for c in range(w):
            score[idx_row[c]] = 1
        start = int(_uniform(state) * n_out) if train else 0
        c = start
        while w < n_pad and c < n_out + start:
            o = pad_perm[c if c < n_out else c - n_out]
            if score[o] == 0:
                idx_row[w] = o
                fmask_row[w] = False
                score[o] = 1
                w += 1
            c += 1
        for c in range(w):
            score[idx_row[c]] = 0
    return w, ex, nc, n_sel


@njit(**PARALLEL)
def query_select(ptr, ids, qb, n_buckets, n_out, budget, n_pad, fptr, flab, fpos,
                 selection, threshold, train, seeds, pad_perm, n_chunks,
                 idx, cnt, fmask, examined, distinct, n_sel):
    """Active sets of ``n`` samples from their bucket ids ``qb`` ``(n, L)``.

    The neurons ``flab[fptr[i]:fptr[i+1]]`` are forced into sample ``i``'s
    set: its first ``fpos[i]`` are its positives (true labels), the rest
    negatives chosen by the caller (e.g. the labels' hard negatives).
    Writes ``idx[i, :cnt[i]]`` (neurons), ``fmask`` (slot holds a forced
    positive), ``examined[i]`` (bucket entries
    visited), ``distinct[i]`` (distinct neurons retrieved) and ``n_sel[i]``
    (slots filled before the padding: ``idx[i, n_sel[i]:cnt[i]]`` are the
    padding neurons, a uniform draw among the ones not selected).
    """
    n, L = qb.shape
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    for ch in prange(n_chunks):
        score, pos, cand, hist, state = _select_scratch(n_out, L)
        for i in range(bounds[ch], bounds[ch + 1]):
            if i + 1 < bounds[ch + 1]:
                _prefetch_buckets(ptr, ids, qb, n_buckets, i + 1)
            w, ex, nc, ns = _select_one(
                i, ptr, ids, qb, n_buckets, n_out, budget, n_pad, fptr, flab, fpos, selection,
                threshold, train, seeds, pad_perm, score, pos, cand, hist, state, idx[i],
                fmask[i])
            cnt[i], examined[i], distinct[i], n_sel[i] = w, ex, nc, ns


@njit(**SERIAL)
def _select_scratch(n_out, L):
    """Per-thread scratch of :func:`_select_one`."""
    return (np.zeros(n_out, dtype=np.int32),
            np.zeros(n_out, dtype=np.bool_),  # forced positives of the sample
            np.empty(n_out + 1, dtype=np.int32),  # +1: written before counted
            np.zeros(L + 2, dtype=np.int64),
            np.zeros(1, dtype=np.uint64))


@njit(**SERIAL)
def _prefetch_buckets(ptr, ids, qb, n_buckets, i):
    """Start loading the first entries of sample ``i``'s buckets."""
    ids2 = ids.reshape(1, ids.shape[0])  # a 2-D view, for prefetch
    for t in range(qb.shape[1]):
        prefetch(ids2, 0, ptr[t * n_buckets + qb[i, t]])


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


# --------------------------------------------------------------------------
# Hard negatives per label (an LSH output layer's memory of its confusions)
# --------------------------------------------------------------------------
@njit(**SERIAL)
def with_hard_negatives(fptr, flab, neg_ids, max_neg, out_ptr, out_lab, seen):
    """Each sample's forced neurons: its labels ``flab[fptr[i]:fptr[i+1]]``
    as they are (so that they stay its first ``fptr[i+1] - fptr[i]``, the
    positives), then the remembered hard negatives of each label
    (``neg_ids[l]``, entries ``>= 0``), without repeats and without its
    labels, at most ``max_neg`` of them (the first ones, label by label).
    Fills ``out_ptr`` (``n + 1``) and
    ``out_lab`` (room for ``len(flab) * (1 + neg_ids.shape[1])``); ``seen``
    is an all-False scratch array of one flag per neuron (left all False).
    """
    n = len(fptr) - 1
    m = neg_ids.shape[1]
    w = 0
    out_ptr[0] = 0
    for i in range(n):
        start = w
        for u in range(fptr[i], fptr[i + 1]):
            o = flab[u]
            seen[o] = True
            out_lab[w] = o
            w += 1
        stop = w + max_neg
        for u in range(fptr[i], fptr[i + 1]):
            if w >= stop:
                break
            row = neg_ids[flab[u]]
            for k in range(m):
                o = row[k]
                if o >= 0 and not seen[o] and w < stop:
                    seen[o] = True
                    out_lab[w] = o
                    w += 1
        for v in range(start, w):
            seen[out_lab[v]] = False
        out_ptr[i + 1] = w


def with_hard_negatives_ref(fptr, flab, neg_ids, max_neg):
    """NumPy reference of :func:`with_hard_negatives`: one list per sample."""
    out = []
    for i in range(len(fptr) - 1):
        lab = [int(o) for o in flab[fptr[i]:fptr[i + 1]]]
        neg = [int(o) for l in lab for o in neg_ids[l] if o >= 0 and o not in lab]
        out.append(lab + list(dict.fromkeys(neg))[:max_neg])
    return out


@njit(**SERIAL)
def record_hard_negatives(s, e, ind, z, fmask, pptr, plab, top, neg_ids, neg_cnt):
    """Remember, for each label of each sample, the sample's ``top // k``
    negatives (at least one) with the largest logits ``z`` among its active
    slots ``s[i]:e[i]`` (``fmask``: the slot holds a positive), ``k`` being
    the sample's number of labels: a sample reports about ``top`` negatives
    in all, however many labels it has.

    Each label keeps ``m = neg_ids.shape[1]`` negatives by the space-saving
    rule (Metwally et al., 2005): a negative already listed gains a count; a
    new one takes the slot with the smallest count (the first such slot) and
    that count plus one. The most frequent confusions of a label stay
    listed, whatever the order they come in. Samples in order: deterministic.
    """
    m = neg_ids.shape[1]
    best_o = np.empty(top, dtype=np.int64)
    best_z = np.empty(top, dtype=np.float32)
    for i in range(len(s)):
        n_lab = pptr[i + 1] - pptr[i]
        if n_lab == 0:
            continue
        top_i = max(1, top // n_lab)
        nb = 0
        for p in range(s[i], e[i]):
            if fmask[p]:
                continue
            v = z[p]
            if nb < top_i:
                q = nb
                nb += 1
            elif v > best_z[nb - 1]:
                q = nb - 1
            else:
                continue
            while q > 0 and best_z[q - 1] < v:  # insertion, largest first
                best_z[q] = best_z[q - 1]
                best_o[q] = best_o[q - 1]
                q -= 1
            best_z[q] = v
            best_o[q] = ind[p]
        for u in range(pptr[i], pptr[i + 1]):
            ids = neg_ids[plab[u]]
            cnt = neg_cnt[plab[u]]
            for b in range(nb):
                o = best_o[b]
                k_min = 0
                found = False
                for k in range(m):
                    if ids[k] == o:
                        cnt[k] += 1
                        found = True
                        break
                    if cnt[k] < cnt[k_min]:
                        k_min = k
                if not found:
                    ids[k_min] = o
                    cnt[k_min] += 1


def record_hard_negatives_ref(s, e, ind, z, fmask, pptr, plab, top, neg_ids, neg_cnt):
    """NumPy reference of :func:`record_hard_negatives` (in place)."""
    for i in range(len(s)):
        n_lab = pptr[i + 1] - pptr[i]
        slots = [p for p in range(s[i], e[i]) if not fmask[p]]
        slots = sorted(slots, key=lambda p: -z[p])[:max(1, top // max(n_lab, 1))]  # stable
        for lab in plab[pptr[i]:pptr[i + 1]]:
            ids, cnt = neg_ids[lab], neg_cnt[lab]
            for p in slots:
                hit = np.flatnonzero(ids == ind[p])
                k = hit[0] if len(hit) else int(np.argmin(cnt))
                ids[k] = ind[p]
                cnt[k] += 1


# --------------------------------------------------------------------------
# Re-ranking the candidates in a low-dimensional sketch
# --------------------------------------------------------------------------
@njit(**PARALLEL)
def sketch_ragged(xs, xe, xi, xv, U, shift, Q):
    """``Q[i] = x_i @ U - shift`` for the ragged rows ``x_i`` (values
    ``xv[xs[i]:xe[i]]`` at columns ``xi[xs[i]:xe[i]]``): the query side of
    :func:`rerank_select`, visiting only the non-zeros."""
    m = U.shape[1]
    for i in prange(len(xs)):
        q = Q[i]
        for j in range(m):
            q[j] = -shift[j]
        for p in range(xs[i], xe[i]):
            v = xv[p]
            Ur = U[xi[p]]
            for j in range(m):
                q[j] += v * Ur[j]


def sketch_ragged_ref(xs, xe, xi, xv, U, shift):
    """NumPy reference of :func:`sketch_ragged`."""
    Q = np.empty((len(xs), U.shape[1]), dtype=np.float64)
    for i in range(len(xs)):
        Q[i] = xv[xs[i]:xe[i]] @ U[xi[xs[i]:xe[i]]] - shift
    return Q


@njit(**SERIAL)
def kth_largest(a, n, k):
    """The ``k``-th largest (``1 <= k <= n``) of ``a[:n]`` (float32); ``a`` is
    scratch (overwritten). A radix select over the floats' bits, eight bits
    a pass: four passes of histogram counts, without a quickselect's
    data-dependent branches (with a quickselect, :func:`rerank_select` took
    0.59 ms per MNIST batch in the training loop; with this, 0.35)."""
    keys = a[:n].view(np.uint32)
    sign = np.uint32(0x80000000)
    for i in range(n):  # order-preserving keys: larger float, larger key
        b = keys[i]
        keys[i] = ~b if b & sign else b | sign
    hist = np.empty(256, dtype=np.int64)
    prefix = np.uint32(0)
    mask = np.uint32(0)
    need = k
    for p in range(4):
        shift = np.uint32(24 - 8 * p)
        hist[:] = 0
        for i in range(n):
            key = keys[i]
            hist[(key >> shift) & np.uint32(255)] += (key & mask) == prefix
        b = 255
        while hist[b] < need:
            need -= hist[b]
            b -= 1
        prefix |= np.uint32(b) << shift
        mask |= np.uint32(255) << shift
    out = np.empty(1, dtype=np.uint32)
    out[0] = prefix & ~sign if prefix & sign else ~prefix
    return out.view(np.float32)[0]


#: the sketch's dot products are summed in vector lanes (reassociated: 8x
#: faster than in order in a micro-benchmark on MNIST's candidates); the order depends on
#: the sketch's width only, not on where the rows lie in memory (tested), so
#: a fit is the same in every process
_REASSOC_SUM = {**PARALLEL, "fastmath": {"reassoc", "nsz", "contract"}}


@njit(**{**_REASSOC_SUM, "parallel": False})
def _rerank_one(S, S0, q, cand, c, budget, sc, tmp, kept, out_row):
    """Of the candidates ``cand[:c]``, the ``budget`` with the highest sketch
    scores ``S0[o] + S[o] @ q`` (ties to the earlier), in candidate order, to
    ``out_row``; returns how many. ``sc``, ``tmp``, ``kept``: scratch."""
    if c <= budget:
        for u in range(c):
            out_row[u] = cand[u]
        return c
    m = S.shape[1]
    for u in range(c):
        o = cand[u]
        Sr = S[o]
        acc = S0[o]
        for j in range(m):
            acc += Sr[j] * q[j]
        sc[u] = acc
        tmp[u] = acc
    thr = kth_largest(tmp, c, budget)
    ties = budget  # candidates at the threshold that fit
    for u in range(c):
        ties -= sc[u] > thr
    # branch-free (the kept ones are scattered: branches mispredict)
    k = 0
    for u in range(c):
        eq = sc[u] == thr
        keep = (sc[u] > thr) | (eq & (ties > 0))
        ties -= eq & keep
        kept[k] = cand[u]
        k += keep
    for u in range(k):
        out_row[u] = kept[u]
    return k


@njit(**_REASSOC_SUM)
def rerank_select(S, S0, Q, idx, cnt, budget, n_chunks, out, out_cnt):
    """Keep, of each sample's candidates ``idx[i, :cnt[i]]``, the ``budget``
    with the highest sketch scores ``S0[o] + S[o] @ Q[i]``; ties go to the
    earlier candidate. Writes ``out[i, :out_cnt[i]]`` (in candidate order)."""
    n, w = idx.shape
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    for ch in prange(n_chunks):
        sc = np.empty(w, dtype=np.float32)
        tmp = np.empty(w, dtype=np.float32)
        kept = np.empty(w, dtype=np.int64)
        for i in range(bounds[ch], bounds[ch + 1]):
            out_cnt[i] = _rerank_one(S, S0, Q[i], idx[i], cnt[i], budget, sc, tmp, kept,
                                     out[i])


@njit(**PARALLEL)
def query_rerank(ptr, ids, qb, n_buckets, n_out, n_cand, n_pad, fptr, flab, fpos, selection,
                 threshold, train, seeds, pad_perm, S, S0, Q, budget, n_chunks, out, out_cnt,
                 cnt, examined, distinct):
    """:func:`query_select` with ``budget=n_cand`` then :func:`rerank_select`,
    sample by sample: a sample's candidates stay in the thread's scratch.
    The same results as the two kernels (``cnt[i]``: sample ``i``'s
    candidates before the re-ranking), with one parallel region instead of
    two (each wakes the pool's threads: about 45 us on this project's 2-core
    machine) and no ``(n, n_cand)`` array between them."""
    n, L = qb.shape
    w = max(n_cand, n_pad, np.max(fptr[1:] - fptr[:-1]) if n else 0, 1)
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    for ch in prange(n_chunks):
        score, pos, cand, hist, state = _select_scratch(n_out, L)
        row = np.empty(w, dtype=np.int64)
        frow = np.empty(w, dtype=np.bool_)
        sc = np.empty(w, dtype=np.float32)
        tmp = np.empty(w, dtype=np.float32)
        kept = np.empty(w, dtype=np.int64)
        for i in range(bounds[ch], bounds[ch + 1]):
            if i + 1 < bounds[ch + 1]:
                _prefetch_buckets(ptr, ids, qb, n_buckets, i + 1)
            c, ex, nc, _ = _select_one(
                i, ptr, ids, qb, n_buckets, n_out, n_cand, n_pad, fptr, flab, fpos, selection,
                threshold, train, seeds, pad_perm, score, pos, cand, hist, state, row, frow)
            cnt[i], examined[i], distinct[i] = c, ex, nc
            out_cnt[i] = _rerank_one(S, S0, Q[i], row, c, budget, sc, tmp, kept, out[i])


def rerank_select_ref(S, S0, Q, idx, cnt, budget):
    """NumPy reference of :func:`rerank_select`: the kept neurons of each
    sample, in candidate order."""
    out = []
    for i in range(idx.shape[0]):
        cand = idx[i, :cnt[i]]
        if len(cand) <= budget:
            out.append(cand.copy())
            continue
        scores = S0[cand] + S[cand].astype(np.float64) @ Q[i].astype(np.float64)
        keep = np.sort(np.argsort(-scores, kind="stable")[:budget])
        out.append(cand[keep])
    return out
