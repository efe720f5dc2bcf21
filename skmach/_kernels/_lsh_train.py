"""Compiled kernels of LSH-sparse training (SLIDE style): forward, backward, Adam.

Layouts (``n`` samples in the minibatch):

- a *dense* input is a C-contiguous ``(n, d)`` float32 array;
- a *ragged* input (a CSR batch, or the output of an LSH layer) is given by
  ``xs, xe`` (start and end of each sample's entries), ``xi`` (their
  coordinates) and ``xv`` (their values), flat arrays;
- an *active set* is ragged too: ``s, e, ind`` list the neurons computed for
  each sample, and per-slot values (``z``, ``dz``) are flat arrays aligned
  with ``ind``.

LSH layers store ``W`` neuron-major ``(n_out, n_in)`` (an active neuron is
one contiguous row); dense layers store ``WT`` ``(n_in, n_out)`` (the input
columns seen in a sparse batch are contiguous rows).

Gradients are accumulated without races and deterministically: an
*inverse map* (a counting sort of the slots by row, in sample order) lists for
every touched row the ``(sample, coefficient)`` pairs that contribute to it;
the rows are then processed in parallel, each by one thread, summing its
contributions in sample order, and the Adam step is applied to that row in
place right away (fused, touched rows only). The result is the same for any
number of threads.

Every kernel has a plain NumPy reference (``*_ref``) used by the tests.
"""

# OMP_WAIT_POLICY=PASSIVE is set by skmach._kernels (imported first).
import math

import numpy as np
from numba import njit, prange

from . import PARALLEL, SERIAL
from ._expf import exp_fast
from ._prefetch import DISTANCE, prefetch_row

# numpy's error model (no zero-division checks) lets LLVM vectorise the loops
SERIAL = {**SERIAL, "error_model": "numpy"}
PARALLEL = {**PARALLEL, "error_model": "numpy"}

#: parallel kernels whose inner loops are reductions (vectorised by LLVM)
_FAST = {**PARALLEL, "fastmath": True}
_FAST_SERIAL = {**SERIAL, "fastmath": True}
#: fastmath without reassociation and without the no-inf/no-nan assumptions
#: (the running max starts at -inf): the sums run in their written order.
#: With ``fastmath=True`` the active-set softmax returned, for the same
#: inputs, a loss differing in the last bits in two processes (a debian fit
#: traced batch by batch: batch 156, ``z`` at another offset in memory), and
#: the weights drifted apart later; with these flags two such processes end
#: with the same weights (``benchmarks/lsh_reproducibility.py``). Which flag
#: did it was not isolated: a small probe did not reproduce it.
_ORDERED = {**PARALLEL, "fastmath": {"nsz", "arcp", "contract", "afn"}}


# --------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------
#: rows taken together by the forward and backward kernels (their loops are
#: written out four wide): one pass over the shared vector feeds four dot
#: products (MNIST's hidden layer, 6,400 of 784 per batch, warm cache:
#: 0.44 -> 0.23 ms), each with its own accumulator, so that every sum is the
#: one a single dot product computes, bit for bit. The gradient sums of the
#: Adam kernels add four rows per pass, in their order. No gain measured on
#: debian-paths' output layer (rows of 128, about two samples a row).
BLOCK = 4


@njit(**_FAST)
def fwd_active_dense_in(W, b, X, s, e, ind, z):
    """``z[p] = W[ind[p]] . X[i] + b[ind[p]]`` for the slots ``p`` of sample ``i``."""
    d = X.shape[1]
    for i in prange(X.shape[0]):
        Xi = X[i]
        p = s[i]
        while p + BLOCK <= e[i]:
            for q in range(p + DISTANCE, min(p + DISTANCE + BLOCK, e[i])):
                prefetch_row(W, ind[q])
            W0, W1, W2, W3 = W[ind[p]], W[ind[p + 1]], W[ind[p + 2]], W[ind[p + 3]]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for j in range(d):
                x = Xi[j]
                a0 += W0[j] * x
                a1 += W1[j] * x
                a2 += W2[j] * x
                a3 += W3[j] * x
            z[p] = a0 + b[ind[p]]
            z[p + 1] = a1 + b[ind[p + 1]]
            z[p + 2] = a2 + b[ind[p + 2]]
            z[p + 3] = a3 + b[ind[p + 3]]
            p += BLOCK
        for p in range(p, e[i]):
            o = ind[p]
            Wo = W[o]
            acc = np.float32(0.0)
            for j in range(d):
                acc += Wo[j] * Xi[j]
            z[p] = acc + b[o]


@njit(**_FAST)
def fwd_active_by_row(W, b, X, rows, rptr, rpos, rsam, n_chunks, z):
    """:func:`fwd_active_dense_in` neuron by neuron: ``z[rpos[t]] =
    W[r] . X[rsam[t]] + b[r]`` for the slots ``t`` of each touched row ``r``
    (``rows, rptr, rpos, rsam`` from :func:`inverse_map`).

    Each row's weights are read once per batch, in increasing row order, and
    used for every sample that has it active (the batch's inputs stay in
    cache), where the sample-major kernel reads a row again for each sample.
    The same sums in the same order: the same ``z``.
    """
    d = X.shape[1]
    bounds = np.linspace(0, len(rows), n_chunks + 1).astype(np.int64)
    for c in prange(n_chunks):
        for u in range(bounds[c], bounds[c + 1]):
            o = rows[u]
            Wo = W[o]
            bo = b[o]
            t, end = rptr[u], rptr[u + 1]
            while t + BLOCK <= end:  # four samples per pass over the row
                X0, X1, X2, X3 = X[rsam[t]], X[rsam[t + 1]], X[rsam[t + 2]], X[rsam[t + 3]]
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for j in range(d):
                    w = Wo[j]
                    a0 += w * X0[j]
                    a1 += w * X1[j]
                    a2 += w * X2[j]
                    a3 += w * X3[j]
                z[rpos[t]] = a0 + bo
                z[rpos[t + 1]] = a1 + bo
                z[rpos[t + 2]] = a2 + bo
                z[rpos[t + 3]] = a3 + bo
                t += BLOCK
            for t in range(t, end):
                Xi = X[rsam[t]]
                acc = np.float32(0.0)
                for j in range(d):
                    acc += Wo[j] * Xi[j]
                z[rpos[t]] = acc + bo


def fwd_active_dense_in_ref(W, b, X, s, e, ind):
    z = np.zeros(len(ind), dtype=W.dtype)
    for i in range(X.shape[0]):
        o = ind[s[i]:e[i]]
        z[s[i]:e[i]] = W[o] @ X[i] + b[o]
    return z


@njit(**_FAST)
def fwd_active_ragged_in(W, b, s, e, ind, xs, xe, xi, xv, z):
    """Active neurons over a ragged input: ``z[p] = sum_q W[ind[p], xi[q]] xv[q] + b``."""
    for i in prange(len(s)):
        for p in range(s[i], e[i]):
            o = ind[p]
            acc = np.float32(0.0)
            for q in range(xs[i], xe[i]):
                acc += W[o, xi[q]] * xv[q]
            z[p] = acc + b[o]


def fwd_active_ragged_in_ref(W, b, s, e, ind, xs, xe, xi, xv):
    z = np.zeros(len(ind), dtype=W.dtype)
    for i in range(len(s)):
        o = ind[s[i]:e[i]]
        c = xi[xs[i]:xe[i]]
        z[s[i]:e[i]] = W[o][:, c] @ xv[xs[i]:xe[i]] + b[o]
    return z


@njit(**_FAST)
def fwd_dense_ragged_in(WT, b, xs, xe, xi, xv, Z):
    """Dense layer over a ragged input: ``Z[i] = b + sum_q xv[q] WT[xi[q]]``."""
    k = WT.shape[1]
    for i in prange(len(xs)):
        for o in range(k):
            Z[i, o] = b[o]
        for q in range(xs[i], xe[i]):
            if q + DISTANCE < xe[i]:
                prefetch_row(WT, xi[q + DISTANCE])
            v = xv[q]
            r = xi[q]
            for o in range(k):
                Z[i, o] += v * WT[r, o]


def fwd_dense_ragged_in_ref(WT, b, xs, xe, xi, xv):
    Z = np.tile(b, (len(xs), 1))
    for i in range(len(xs)):
        Z[i] += xv[xs[i]:xe[i]] @ WT[xi[xs[i]:xe[i]]]
    return Z


@njit(**_FAST)
def fwd_rows_dense_in(W, b, X, Z):
    """Every neuron of a neuron-major ``W`` over dense ``X``, one sample at a
    time (the result of a sample does not depend on the batch)."""
    d = X.shape[1]
    for i in prange(X.shape[0]):
        for o in range(W.shape[0]):
            acc = np.float32(0.0)
            for j in range(d):
                acc += W[o, j] * X[i, j]
            Z[i, o] = acc + b[o]


@njit(**_FAST)
def fwd_cols_dense_in(WT, b, X, Z):
    """Dense layer (``WT`` input-major) over dense ``X``, one sample at a time."""
    k = WT.shape[1]
    for i in prange(X.shape[0]):
        for o in range(k):
            Z[i, o] = b[o]
        for j in range(X.shape[1]):
            v = X[i, j]
            if v != 0:
                for o in range(k):
                    Z[i, o] += v * WT[j, o]


# --------------------------------------------------------------------------
# Input gradients (computed before the weights move)
# --------------------------------------------------------------------------
@njit(**_FAST)
def dx_active_dense(W, s, e, ind, dz, dX):
    """``dX[i] = sum_p dz[p] W[ind[p]]`` (LSH layer over a dense input)."""
    d = W.shape[1]
    for i in prange(dX.shape[0]):
        dXi = dX[i]
        for j in range(d):
            dXi[j] = 0.0
        p = s[i]
        while p + BLOCK <= e[i]:  # four rows per pass over dX[i], added in slot order
            for q in range(p + DISTANCE, min(p + DISTANCE + BLOCK, e[i])):
                prefetch_row(W, ind[q])
            W0, W1, W2, W3 = W[ind[p]], W[ind[p + 1]], W[ind[p + 2]], W[ind[p + 3]]
            g0, g1, g2, g3 = dz[p], dz[p + 1], dz[p + 2], dz[p + 3]
            for j in range(d):
                dXi[j] = (((dXi[j] + g0 * W0[j]) + g1 * W1[j]) + g2 * W2[j]) + g3 * W3[j]
            p += BLOCK
        for p in range(p, e[i]):
            g = dz[p]
            Wo = W[ind[p]]
            for j in range(d):
                dXi[j] += g * Wo[j]


def dx_active_dense_ref(W, s, e, ind, dz, n):
    dX = np.zeros((n, W.shape[1]), dtype=W.dtype)
    for i in range(n):
        dX[i] = dz[s[i]:e[i]] @ W[ind[s[i]:e[i]]]
    return dX


@njit(**_FAST)
def dx_active_ragged(W, s, e, ind, dz, xs, xe, xi, dxv):
    """Gradient at the input's entries: ``dxv[q] = sum_p dz[p] W[ind[p], xi[q]]``."""
    for i in prange(len(s)):
        for q in range(xs[i], xe[i]):
            c = xi[q]
            acc = np.float32(0.0)
            for p in range(s[i], e[i]):
                acc += dz[p] * W[ind[p], c]
            dxv[q] = acc


def dx_active_ragged_ref(W, s, e, ind, dz, xs, xe, xi):
    dxv = np.zeros(len(xi), dtype=W.dtype)
    for i in range(len(s)):
        dxv[xs[i]:xe[i]] = dz[s[i]:e[i]] @ W[ind[s[i]:e[i]]][:, xi[xs[i]:xe[i]]]
    return dxv


@njit(**_FAST)
def dx_dense_ragged(WT, dZ, xs, xe, xi, dxv):
    """Dense layer, ragged input: ``dxv[q] = WT[xi[q]] . dZ[i]``."""
    k = WT.shape[1]
    for i in prange(len(xs)):
        for q in range(xs[i], xe[i]):
            r = xi[q]
            acc = np.float32(0.0)
            for o in range(k):
                acc += WT[r, o] * dZ[i, o]
            dxv[q] = acc


def dx_dense_ragged_ref(WT, dZ, xs, xe, xi):
    dxv = np.zeros(len(xi), dtype=WT.dtype)
    for i in range(len(xs)):
        dxv[xs[i]:xe[i]] = WT[xi[xs[i]:xe[i]]] @ dZ[i]
    return dxv


# --------------------------------------------------------------------------
# A minibatch's rows of a CSR matrix, as a ragged input
# --------------------------------------------------------------------------
@njit(**SERIAL)
def take_rows(indptr, indices, data, rows):
    """Rows ``rows`` of the CSR matrix ``(data, indices, indptr)``, in that
    order: ``ptr`` (``n + 1`` offsets), ``xi`` (int64 columns, in the matrix's
    order) and ``xv`` (float32 values; empty when ``data`` is).

    ``X[rows]`` in SciPy, then the conversions, took 0.1-0.2 ms of Python
    per delicious batch (a tenth of its training step), holding the GIL.
    """
    n = len(rows)
    ptr = np.empty(n + 1, dtype=np.int64)
    ptr[0] = 0
    for i in range(n):
        r = rows[i]
        ptr[i + 1] = ptr[i] + (indptr[r + 1] - indptr[r])
    xi = np.empty(ptr[n], dtype=np.int64)
    values = len(data) > 0
    xv = np.empty(ptr[n] if values else 0, dtype=np.float32)
    for i in range(n):
        a = indptr[rows[i]]
        o = ptr[i]
        for q in range(ptr[i + 1] - o):
            xi[o + q] = indices[a + q]
            if values:
                xv[o + q] = data[a + q]
    return ptr, xi, xv


def take_rows_ref(X, rows):
    """NumPy/SciPy reference: ``X[rows]``'s offsets, columns and values."""
    B = X[rows]
    return (B.indptr.astype(np.int64), B.indices.astype(np.int64),
            B.data.astype(np.float32))


# --------------------------------------------------------------------------
# Inverse map: row -> (sample, slot), counting sort in sample order
# --------------------------------------------------------------------------
@njit(**SERIAL)
def inverse_map(s, e, ind, n_rows):
    """Group the slots of a ragged set by row (neuron or input column).

    Returns ``rows`` (the touched rows, increasing), ``rptr`` (their entries
    are ``rpos[rptr[r]:rptr[r + 1]]`` for the ``r``-th touched row), ``rpos``
    (slot positions, in increasing sample order) and ``rsam`` (their samples).
    """
    count = np.zeros(n_rows + 1, dtype=np.int64)
    for i in range(len(s)):
        for p in range(s[i], e[i]):
            count[ind[p] + 1] += 1
    n_touched = 0
    for r in range(n_rows):
        if count[r + 1] > 0:
            n_touched += 1
    rows = np.empty(n_touched, dtype=np.int64)
    rptr = np.empty(n_touched + 1, dtype=np.int64)
    start = np.empty(n_rows, dtype=np.int64)
    k = 0
    total = 0
    for r in range(n_rows):
        c = count[r + 1]
        start[r] = total
        if c > 0:
            rows[k] = r
            rptr[k] = total
            k += 1
        total += c
    rptr[n_touched] = total
    rpos = np.empty(total, dtype=np.int64)
    rsam = np.empty(total, dtype=np.int64)
    for i in range(len(s)):
        for p in range(s[i], e[i]):
            r = ind[p]
            rpos[start[r]] = p
            rsam[start[r]] = i
            start[r] += 1
    return rows, rptr, rpos, rsam


# --------------------------------------------------------------------------
# Adam (in place)
# --------------------------------------------------------------------------
def catch_up_table(lr_at, t_max, b1, b2, n_terms=400):
    """``F[t] = sum_{s >= 1} lr_at(t + s) * q**s``, ``q = b1 / sqrt(b2)``, for
    ``t = 0 .. t_max``: the step sizes of zero-gradient Adam steps after step
    ``t``, each weighted by how much of the momentum is left by then.

    ``lr_at(u)`` is the (bias-corrected) step size of step ``u`` for an array
    of steps. The sum is cut after ``n_terms`` terms (``q**400 < 1e-18``).
    """
    q = b1 / math.sqrt(b2)
    lr = np.asarray(lr_at(np.arange(t_max + n_terms + 1, dtype=np.float64)), dtype=np.float64)
    F = np.zeros(t_max + n_terms + 1)
    for t in range(t_max + n_terms - 1, -1, -1):  # F[t] = q (lr[t+1] + F[t+1])
        F[t] = q * (lr[t + 1] + F[t + 1])
    return F[:t_max + 1]


@njit(**_FAST_SERIAL)
def _catch_up_factors(last, step, F, b1, b2):
    """The ``k = step - last - 1`` zero-gradient Adam steps a row skipped
    between its step ``last`` and ``step``, in closed form: the move
    ``sum_{s=1..k} lr(last + s) q**s = F[last] - q**k F[step - 1]`` (``F``
    from :func:`catch_up_table`) times ``m / (sqrt(v) + eps)``, then the
    decays ``b1**k`` of ``m`` and ``b2**k`` of ``v``."""
    k = step - last - 1
    if k <= 0:
        return np.float32(0.0), np.float32(1.0), np.float32(1.0)
    q = b1 / np.sqrt(b2)
    return (np.float32(F[last] - q ** k * F[step - 1]), np.float32(b1 ** k),
            np.float32(b2 ** k))


@njit(**_FAST_SERIAL)
def _f32(alpha, lr_t, b1, b2, eps):
    """Adam's scalars in single precision (the arithmetic of the steps), with
    ``1 - b1`` and ``1 - b2`` rounded from double precision (in single
    precision ``1 - 0.999`` keeps only 4 correct digits)."""
    return (np.float32(alpha), np.float32(lr_t), np.float32(b1), np.float32(b2),
            np.float32(eps), np.float32(1 - b1), np.float32(1 - b2))


@njit(**_FAST_SERIAL)
def _adam_scalar(p, m_, v_, r, g, lr_t, b1, b2, eps, c1, c2):
    """Adam step of the scalar ``p[r]`` (a bias) with gradient ``g``."""
    m = b1 * m_[r] + c1 * g
    v = b2 * v_[r] + c2 * g * g
    m_[r] = m
    v_[r] = v
    p[r] -= lr_t * m / (np.sqrt(v) + eps)


@njit(**_FAST_SERIAL)
def _adam_row(P, M, V, r, g, alpha, lr_t, b1, b2, eps, c1, c2, cu_lr, d1, d2):
    """Adam step of row ``r``, after the catch-up ``(cu_lr, d1, d2)`` of its
    skipped steps (:func:`_catch_up_factors`; ``(0, 1, 1)``: none);
    ``c1 = 1 - b1``, ``c2 = 1 - b2``.

    The arithmetic is single precision, as the parameters' (the callers pass
    the scalars through :func:`_f32`: float64 scalars would promote every
    operation, and float64 square roots and divisions take twice the time;
    MNIST's hidden layer, 997 rows of 784, warm cache: 1.74-1.81 -> 1.07-1.13 ms
    per step).
    """
    Pr, Mr, Vr = P[r], M[r], V[r]
    if cu_lr > 0:  # its own loop: the step's loop below then has no branch
        for j in range(P.shape[1]):
            # the catch-up of adam_catch_up, written out: through a helper call
            # the loop no longer vectorises (3x slower here, 7x in adam_catch_up)
            Pr[j] -= cu_lr * Mr[j] / (np.sqrt(Vr[j]) + eps)
            Mr[j] *= d1
            Vr[j] *= d2
    for j in range(P.shape[1]):
        gj = g[j] + alpha * Pr[j]
        m = b1 * Mr[j] + c1 * gj
        v = b2 * Vr[j] + c2 * gj * gj
        Mr[j] = m
        Vr[j] = v
        Pr[j] -= lr_t * m / (np.sqrt(v) + eps)


@njit(**_FAST)
def adam_catch_up(P, M, V, bias, Mb, Vb, rows, last, t, F, b1, b2, eps):
    """The Adam steps a sampled layer's rows skipped, in closed form.

    Row ``r`` was last updated at step ``last[r]``; dense Adam on the sampled
    gradient (zero for a neuron outside every active set of a batch) would
    have moved it ``k = t - last[r] - 1`` more times on its momentum alone:
    ``m <- b1 m``, ``v <- b2 v``, ``p <- p - lr(u) m / (sqrt(v) + eps)`` at
    each step ``u``. Applied here at once with each step's own ``lr(u)``
    (through ``F``, :func:`catch_up_table`); two approximations: ``eps`` is
    added to the square root of the moment before its decays (exact when
    ``sqrt(v)`` dominates ``eps``; otherwise the move is at most
    ``1 / b2**(s/2)`` too large at the ``s``-th skipped step, where the
    momentum left, ``q**s``, is already small), and the L2 term of the
    skipped steps is left out. Then ``last[r] = t``.
    :func:`adam_rows_dense_src` does the same, fused, given ``last``.
    """
    has_bias = bias.shape[0] > 0
    eps32 = np.float32(eps)  # single-precision arithmetic (see _adam_row)
    for u in prange(len(rows)):
        r = rows[u]
        cu_lr, d1, d2 = _catch_up_factors(last[r], t, F, b1, b2)
        last[r] = t
        if cu_lr == 0.0:
            continue
        Pr, Mr, Vr = P[r], M[r], V[r]
        for j in range(P.shape[1]):
            Pr[j] -= cu_lr * Mr[j] / (np.sqrt(Vr[j]) + eps32)
            Mr[j] *= d1
            Vr[j] *= d2
        if has_bias:
            _catch_up_bias(bias, Mb, Vb, r, cu_lr, d1, d2, eps32)


@njit(**_FAST_SERIAL)
def _catch_up_bias(bias, Mb, Vb, r, cu_lr, d1, d2, eps):
    bias[r] -= cu_lr * Mb[r] / (np.sqrt(Vb[r]) + eps)
    Mb[r] *= d1
    Vb[r] *= d2


def adam_catch_up_ref(P, M, V, first, k, lr_at, b1, b2, eps):
    """NumPy reference: ``k`` zero-gradient Adam steps on ``P``, the ``s``-th
    with step size ``lr_at(first + s)``."""
    for u in range(first + 1, first + k + 1):
        M *= b1
        V *= b2
        P -= lr_at(u) * M / (np.sqrt(V) + eps)


@njit(**_FAST)
def adam_rows_dense_src(P, M, V, bias, Mb, Vb, rows, rptr, rpos, rsam, coef, D,
                        alpha, lr_t, b1, b2, eps, n_chunks, last, step, F):
    """Fused gradient + Adam on the touched rows only.

    Row ``rows[k]`` of ``P`` gets the gradient
    ``sum_{t in rptr[k]:rptr[k+1]} coef[rpos[t]] * D[rsam[t]] + alpha * P[row]``;
    when ``bias`` has entries, ``bias[row]`` gets ``sum coef`` (no penalty).
    When ``last`` has entries (one per row of ``P``), each row first catches
    up the steps it skipped since ``last[row]`` (as :func:`adam_catch_up`,
    with the table ``F``) and ``last[row]`` becomes ``step``: the same pass
    over the row.
    """
    k = P.shape[1]
    has_bias = bias.shape[0] > 0
    catch_up = last.shape[0] > 0
    # single-precision arithmetic (see _adam_row)
    a32, lr32, b1_32, b2_32, eps32, c1, c2 = _f32(alpha, lr_t, b1, b2, eps)
    bounds = np.linspace(0, len(rows), n_chunks + 1).astype(np.int64)
    # scattered rows (a sparse input's columns): fetch them ahead; rows that
    # cover much of the layer come in runs the hardware prefetcher follows
    # (first layer of debian-paths, 8% of the rows: 2.4 -> 2.1 ms per batch;
    # its output layer, 60%: no gain)
    scattered = 4 * len(rows) < P.shape[0]
    for c in prange(n_chunks):
        g = np.empty(k, dtype=np.float32)
        for t in range(bounds[c], bounds[c + 1]):
            if scattered and t + DISTANCE < bounds[c + 1]:
                r2 = rows[t + DISTANCE]
                prefetch_row(P, r2)
                prefetch_row(M, r2)
                prefetch_row(V, r2)
            r = rows[t]
            for j in range(k):
                g[j] = 0.0
            gb = np.float32(0.0)
            u = rptr[t]
            while u + BLOCK <= rptr[t + 1]:  # four samples per pass over g
                a0, a1 = coef[rpos[u]], coef[rpos[u + 1]]
                a2, a3 = coef[rpos[u + 2]], coef[rpos[u + 3]]
                D0, D1, D2, D3 = D[rsam[u]], D[rsam[u + 1]], D[rsam[u + 2]], D[rsam[u + 3]]
                gb = (((gb + a0) + a1) + a2) + a3
                for j in range(k):
                    g[j] = (((g[j] + a0 * D0[j]) + a1 * D1[j]) + a2 * D2[j]) + a3 * D3[j]
                u += BLOCK
            for u in range(u, rptr[t + 1]):
                a = coef[rpos[u]]
                Di = D[rsam[u]]
                gb += a
                for j in range(k):
                    g[j] += a * Di[j]
            cu_lr, d1, d2 = np.float32(0.0), np.float32(1.0), np.float32(1.0)
            if catch_up:
                cu_lr, d1, d2 = _catch_up_factors(last[r], step, F, b1, b2)
                last[r] = step
            _adam_row(P, M, V, r, g, a32, lr32, b1_32, b2_32, eps32, c1, c2, cu_lr, d1, d2)
            if has_bias:
                if cu_lr > 0:
                    _catch_up_bias(bias, Mb, Vb, r, cu_lr, d1, d2, eps32)
                _adam_scalar(bias, Mb, Vb, r, gb, lr32, b1_32, b2_32, eps32, c1, c2)


@njit(**_FAST)
def adam_rows_ragged_src(P, M, V, bias, Mb, Vb, rows, rptr, rpos, rsam, coef,
                         xs, xe, xi, xv, alpha, lr_t, b1, b2, eps, n_chunks):
    """As :func:`adam_rows_dense_src` with a ragged ``D`` (its sample ``i`` is
    ``xv[xs[i]:xe[i]]`` at columns ``xi[xs[i]:xe[i]]``).

    Lazy at the entry level: only the columns present in the contributing
    samples move (their gradient is defined; the others keep weight and
    moments, as for the input columns of a sparse batch).
    """
    k = P.shape[1]
    has_bias = bias.shape[0] > 0
    a32, lr32, b1_32, b2_32, eps32, c1, c2 = _f32(alpha, lr_t, b1, b2, eps)  # see _adam_row
    bounds = np.linspace(0, len(rows), n_chunks + 1).astype(np.int64)
    for c in prange(n_chunks):
        g = np.zeros(k, dtype=np.float32)
        seen = np.zeros(k, dtype=np.bool_)
        cols = np.empty(k, dtype=np.int64)
        for t in range(bounds[c], bounds[c + 1]):
            r = rows[t]
            Pr, Mr, Vr = P[r], M[r], V[r]
            gb = np.float32(0.0)
            nc = 0
            for u in range(rptr[t], rptr[t + 1]):
                a = coef[rpos[u]]
                i = rsam[u]
                gb += a
                for q in range(xs[i], xe[i]):
                    j = xi[q]
                    g[j] += a * xv[q]
                    if not seen[j]:
                        seen[j] = True
                        cols[nc] = j
                        nc += 1
            for u in range(nc):
                j = cols[u]
                gj = g[j] + a32 * Pr[j]
                m = b1_32 * Mr[j] + c1 * gj
                v = b2_32 * Vr[j] + c2 * gj * gj
                Mr[j] = m
                Vr[j] = v
                Pr[j] -= lr32 * m / (np.sqrt(v) + eps32)
                g[j] = 0.0
                seen[j] = False
            if has_bias:
                _adam_scalar(bias, Mb, Vb, r, gb, lr32, b1_32, b2_32, eps32, c1, c2)


@njit(**_FAST)
def adam_dense(P, G, M, V, alpha, lr_t, b1, b2, eps):
    """In-place Adam on a whole 2-D parameter, gradient ``G + alpha * P``
    (single-precision arithmetic, see :func:`_adam_row`)."""
    a32, lr32, b1_32, b2_32, eps32, c1, c2 = _f32(alpha, lr_t, b1, b2, eps)  # see _adam_row
    for r in prange(P.shape[0]):
        for j in range(P.shape[1]):
            gj = G[r, j] + a32 * P[r, j]
            m = b1_32 * M[r, j] + c1 * gj
            v = b2_32 * V[r, j] + c2 * gj * gj
            M[r, j] = m
            V[r, j] = v
            P[r, j] -= lr32 * m / (np.sqrt(v) + eps32)


def adam_ref(P, G, M, V, alpha, lr_t, b1, b2, eps):
    """NumPy reference of one Adam step (in place) on the given rows."""
    G = G + alpha * P
    M *= b1
    M += (1 - b1) * G
    V *= b2
    V += (1 - b2) * G * G
    P -= lr_t * M / (np.sqrt(V) + eps)


# --------------------------------------------------------------------------
# Softmax cross-entropy
# --------------------------------------------------------------------------
@njit(**_ORDERED)
def softmax_ce_active(s, e, z, forced, pad_start, pad_logw, scale, dz, loss):
    """Softmax over each sample's active slots, target uniform over its forced
    slots (true labels); ``dz`` = gradient times ``scale``, ``loss[i]`` per sample.

    Slots ``pad_start[i] <= p < e[i]`` (uniformly drawn padding neurons) have
    ``pad_logw[i]`` added to their score inside the softmax: each stands for
    ``exp(pad_logw[i])`` neurons left out of the active set (importance
    weights, so the active normalisation estimates the full one). With
    ``pad_start = e`` this is the plain softmax over the active set.

    The exponentials in single precision (:func:`~skmach._kernels._expf.exp_fast`,
    in a loop of their own over the sample's slots, which vectorises; they
    were stored in single precision before too), summed in double precision
    in slot order; the loss and gradient in double precision (in single, a
    label's ``p - 1`` near ``p = 1`` keeps few digits). Against ``np.exp``
    in double precision (a libm call per slot), 128 samples of 147 slots
    (delicious), 1 thread: 0.128 -> 0.058 ms (lsh_mlp_notes.md, eleventh
    round).
    """
    for i in prange(len(s)):
        if e[i] == s[i]:
            loss[i] = 0.0
            continue
        # the sample's slots as views: loops over them vectorise, loops over
        # range(s[i], e[i]) of the whole arrays do not (8x on the exponentials)
        zi, di, fi = z[s[i]:e[i]], dz[s[i]:e[i]], forced[s[i]:e[i]]
        m, q = len(zi), pad_start[i] - s[i]
        lw = np.float32(pad_logw[i])
        for p in range(q):  # the scores, the padding's with its weight
            di[p] = zi[p]
        for p in range(q, m):
            di[p] = zi[p] + lw
        mx = _row_max(di)
        for p in range(m):  # one exp per slot, kept in dz
            di[p] = exp_fast(di[p] - mx)
        tot = 0.0
        nt = 0
        for p in range(m):
            tot += di[p]
            nt += fi[p]
        lse = mx + np.log(tot)
        li = 0.0
        tw = 1.0 / nt if nt > 0 else 0.0
        c = scale / tot if nt > 0 else 0.0
        for p in range(m):  # in double precision: p - 1 of a label near 1
            t = tw if fi[p] else 0.0
            li -= t * (zi[p] - lse)
            di[p] = c * di[p] - scale * t
        loss[i] = li


@njit(**_FAST_SERIAL)
def _row_max(z):
    """``z.max()`` of a non-empty 1-D array, in 16 running maxima: one running
    maximum is a chain of dependent comparisons that LLVM does not vectorise
    (debian-paths' 128 x 24,288 logits per batch: 1.73 -> 0.87 ms)."""
    lanes = 16
    acc = np.empty(lanes, dtype=z.dtype)
    for j in range(lanes):
        acc[j] = z[0]
    o = 0
    while o + lanes <= len(z):
        for j in range(lanes):
            v = z[o + j]
            acc[j] = v if v > acc[j] else acc[j]
        o += lanes
    mx = acc[0]
    for j in range(lanes):
        mx = acc[j] if acc[j] > mx else mx
    for o in range(o, len(z)):
        mx = z[o] if z[o] > mx else mx
    return mx


@njit(**_FAST)
def softmax_ce_dense(Z, pptr, plab, scale, dZ, loss):
    """Softmax over all outputs, target uniform over ``plab[pptr[i]:pptr[i+1]]``.

    One exponential per output (kept in ``dZ``, then scaled), in the input's
    precision: the loss is a third of the dense output layer's time otherwise;
    in single precision :func:`~skmach._kernels._expf.exp_fast`, which
    vectorises (debian-paths, 128 x 24,288 per batch: 9.7 -> 2.2 ms with
    :func:`_row_max`).
    """
    k = Z.shape[1]
    for i in prange(Z.shape[0]):
        nt = pptr[i + 1] - pptr[i]
        zi = Z[i]
        di = dZ[i]
        mx = _row_max(zi)
        tot = zi[0] - zi[0]  # zero of the input's type: the loop vectorises
        for o in range(k):
            ev = exp_fast(zi[o] - mx)
            di[o] = ev
            tot += ev
        lse = mx + np.log(np.float64(tot))
        c = scale / tot if nt > 0 else 0.0
        for o in range(k):
            di[o] = di[o] * c
        li = 0.0
        for u in range(pptr[i], pptr[i + 1]):
            o = plab[u]
            li -= (zi[o] - lse) / nt
            di[o] -= scale / nt
        loss[i] = li


def softmax_ce_dense_ref(Z, pptr, plab):
    n, k = Z.shape
    T = np.zeros((n, k))
    for i in range(n):
        lab = plab[pptr[i]:pptr[i + 1]]
        if len(lab):
            T[i, lab] = 1.0 / len(lab)
    Zs = Z - Z.max(1, keepdims=True)
    logp = Zs - np.log(np.exp(Zs).sum(1, keepdims=True))
    loss = -(T * logp).sum(1)
    dZ = np.exp(logp) * T.sum(1, keepdims=True) - T
    return loss, dZ


# --------------------------------------------------------------------------
# Gradient sparsification (an LSH output layer's gradient_threshold)
# --------------------------------------------------------------------------
@njit(**SERIAL)
def drop_small_slots(s, e, ind, dz, tau):
    """The slots of a ragged set whose gradient is at least ``tau`` in size.

    Returns ``(s2, e2, ind2, dz2)``: each sample's slots with
    ``|dz| >= tau``, in their order (a NaN is dropped).
    """
    n = len(s)
    s2 = np.empty(n, dtype=np.int64)
    e2 = np.empty(n, dtype=np.int64)
    ind2 = np.empty(len(ind), dtype=np.int64)
    dz2 = np.empty(len(ind), dtype=dz.dtype)
    k = 0
    for i in range(n):
        s2[i] = k
        for p in range(s[i], e[i]):
            g = dz[p]
            ind2[k] = ind[p]  # written, then kept or overwritten: no branch
            dz2[k] = g
            k += abs(g) >= tau
        e2[i] = k
    return s2, e2, ind2[:k], dz2[:k]


def drop_small_slots_ref(s, e, ind, dz, tau):
    keep = [np.abs(dz[s[i]:e[i]]) >= tau for i in range(len(s))]
    counts = np.array([k.sum() for k in keep], dtype=np.int64)
    e2 = np.cumsum(counts)
    s2 = e2 - counts
    ind2 = np.concatenate([ind[s[i]:e[i]][keep[i]] for i in range(len(s))] + [ind[:0]])
    dz2 = np.concatenate([dz[s[i]:e[i]][keep[i]] for i in range(len(s))] + [dz[:0]])
    return s2, e2, ind2, dz2
