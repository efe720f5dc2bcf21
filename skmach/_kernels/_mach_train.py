"""Training kernels of MACH's per-repetition model (Numba).

The NumPy reference of every kernel is in :mod:`skmach.mach._repetition_model`
(``forward``, ``loss_and_grad_logits``, ``backward`` and
:class:`skmach._optim.AdamOptimizer`); ``skmach/_kernels/tests`` compares them
on small cases.

- :func:`sparse_forward` / :func:`sparse_forward_parallel`: ``X @ W + b``
  (and ReLU) for a CSR ``X``, row by row, in the same order as SciPy's CSR
  product.
- :func:`logits_grad`: the softmax or sigmoid loss and its gradient with
  respect to the logits, in place, from *sparse* targets (a list of
  ``(bucket, target)`` per sample and repetition): never an
  ``n x R x B`` target array.
- :func:`sparse_backward_adam`: ``X.T @ D`` restricted to the features
  present in the batch, plus the L2 term, and the Adam step on those rows,
  in place. The batch is transposed by a counting sort (samples stay in
  increasing order within a feature), so every row's gradient is summed in
  the same order whatever else is in the batch. The only optimiser is this
  *lazy* Adam: rows of features absent from a batch keep their weights and
  moments; a dense ``X`` touches every row.
- :func:`adam_dense`: the same Adam step on a small dense parameter.

Every kernel is serial and releases the GIL: MACH trains groups of
repetitions in joblib threads, one core each.
"""

import numpy as np
from numba import njit, prange

from . import PARALLEL, SERIAL


@njit(**SERIAL)
def _forward_row(i, indptr, indices, data, W, b, relu, out):
    m = W.shape[1]
    row = out[i]
    for c in range(m):
        row[c] = b[c]
    for p in range(indptr[i], indptr[i + 1]):
        x = np.float32(data[p])
        w = W[indices[p]]
        for c in range(m):
            row[c] += x * w[c]
    if relu:
        for c in range(m):
            if row[c] < 0:
                row[c] = 0


@njit(**SERIAL)
def sparse_forward(indptr, indices, data, W, b, relu, out):
    """``out = X @ W + b`` (then ReLU when ``relu``) for CSR ``X``; serial."""
    for i in range(len(indptr) - 1):
        _forward_row(i, indptr, indices, data, W, b, relu, out)


@njit(**PARALLEL)
def sparse_forward_parallel(indptr, indices, data, W, b, relu, out):
    """:func:`sparse_forward`, parallel over rows (prediction)."""
    for i in prange(len(indptr) - 1):
        _forward_row(i, indptr, indices, data, W, b, relu, out)


@njit(**PARALLEL)
def dense_forward_parallel(X, W, b, relu, out):
    """``out = X @ W + b`` (then ReLU) for dense ``X``, row by row (prediction).

    One row's result never depends on the other rows (a BLAS product may
    round a row differently depending on how many rows come with it).
    """
    m = W.shape[1]
    for i in prange(X.shape[0]):
        row = out[i]
        for c in range(m):
            row[c] = b[c]
        for j in range(X.shape[1]):
            x = np.float32(X[i, j])
            if x != 0:
                w = W[j]
                for c in range(m):
                    row[c] += x * w[c]
        if relu:
            for c in range(m):
                if row[c] < 0:
                    row[c] = 0


@njit(**PARALLEL)
def output_layer_parallel(A, W2, b2, out):
    """Logits ``out[i, r] = A[i, r*H:(r+1)*H] @ W2[r] + b2[r]`` row by row
    (prediction; batch-invariant like :func:`dense_forward_parallel`)."""
    n = A.shape[0]
    g, H, B = W2.shape
    for i in prange(n):
        for r in range(g):
            z = out[i, r]
            for c in range(B):
                z[c] = b2[r, c]
            for h in range(H):
                a = A[i, r * H + h]
                if a != 0:
                    w = W2[r, h]
                    for c in range(B):
                        z[c] += a * w[c]


def logits_grad(Z, tptr, tcol, tval, scale, softmax, loss_out):
    """Loss and gradient of the logits, in place.

    The exponentials run in NumPy (SIMD ``exp`` on whole blocks, about ten
    times faster than a scalar ``exp`` in a Numba loop); the two Numba
    passes around them handle the sparse targets.

    Parameters
    ----------
    Z : float32 array of shape (n, g, B)
        Logits; overwritten with ``dL/dZ`` of the weighted mean loss.
    tptr : int64 array of shape (n * g + 1,)
        Targets of sample ``i`` in repetition ``r`` are entries
        ``tptr[i * g + r]:tptr[i * g + r + 1]`` of ``tcol`` (bucket) and
        ``tval`` (target value; distinct buckets).
    scale : float32 array of shape (n,)
        Weight of each sample divided by the sum of weights.
    softmax : bool
        Softmax cross-entropy (targets sum to 1; a sample without targets
        contributes nothing), else binary cross-entropy with logits.
    loss_out : float64 array of shape (g,)
        The weighted mean loss of each repetition is added to it.
    """
    if softmax:
        mx = Z.max(axis=2)
        _softmax_targets_before(Z, mx, tptr, tcol, tval, scale, loss_out)
        Z -= mx[:, :, None]
        np.exp(Z, out=Z)
        tot = Z.sum(axis=2, dtype=np.float64)
        _softmax_finish(Z, tot, tptr, tcol, tval, scale, loss_out)
    else:
        # softplus(z) = max(z, 0) + log1p(exp(-|z|)); sigmoid from the same exp
        E = np.abs(Z)
        np.negative(E, out=E)
        np.exp(E, out=E)
        per = np.log1p(E)
        per += np.maximum(Z, 0)
        per = per.sum(axis=2, dtype=np.float64)  # (n, g)
        inv = E + 1
        np.reciprocal(inv, out=inv)
        E *= inv  # sigmoid(-|z|)
        np.copyto(E, inv, where=Z >= 0)  # sigmoid(z) in E
        _sigmoid_finish(Z, E, per, tptr, tcol, tval, scale, loss_out)


@njit(**SERIAL)
def _softmax_targets_before(Z, mx, tptr, tcol, tval, scale, loss_out):
    """Loss terms that need the logits: ``sum_q t_q (max - z_q)``."""
    n, g, B = Z.shape
    for i in range(n):
        s = scale[i]
        for r in range(g):
            z = Z[i, r]
            lval = 0.0
            for q in range(tptr[i * g + r], tptr[i * g + r + 1]):
                lval += tval[q] * (mx[i, r] - z[tcol[q]])
            loss_out[r] += s * lval


@njit(**SERIAL)
def _softmax_finish(E, tot, tptr, tcol, tval, scale, loss_out):
    """From ``exp(z - max)`` and its row sums: the loss's ``log`` term and
    ``s * (softmax - target)`` in place."""
    n, g, B = E.shape
    for i in range(n):
        s = scale[i]
        for r in range(g):
            e = E[i, r]
            q0 = tptr[i * g + r]
            q1 = tptr[i * g + r + 1]
            if q1 == q0:  # no label: contributes nothing
                for c in range(B):
                    e[c] = 0
                continue
            tsum = 0.0
            for q in range(q0, q1):
                tsum += tval[q]
            loss_out[r] += s * tsum * np.log(tot[i, r])
            f = np.float32(s / tot[i, r])
            for c in range(B):
                e[c] *= f
            for q in range(q0, q1):
                e[tcol[q]] -= s * tval[q]


@njit(**SERIAL)
def _sigmoid_finish(Z, S, per, tptr, tcol, tval, scale, loss_out):
    """Binary cross-entropy ``softplus(z) - t z`` (``per`` holds the softplus
    sums) and ``s * (sigmoid(z) - t)`` written over ``Z`` (``S`` = sigmoid)."""
    n, g, B = Z.shape
    for i in range(n):
        s = scale[i]
        sf = np.float32(s)
        for r in range(g):
            z = Z[i, r]
            q0 = tptr[i * g + r]
            q1 = tptr[i * g + r + 1]
            lval = per[i, r]
            for q in range(q0, q1):
                lval -= tval[q] * z[tcol[q]]
            sg = S[i, r]
            for c in range(B):
                z[c] = sf * sg[c]
            for q in range(q0, q1):
                z[tcol[q]] -= s * tval[q]
            loss_out[r] += s * lval


@njit(**SERIAL)
def multilabel_targets(indptr, Hy, n_buckets, softmax):
    """Sparse targets of a multi-label batch (see ``sparse_targets``).

    Parameters
    ----------
    indptr : int array of shape (n + 1,)
        Row pointers of the batch's label indicator.
    Hy : int64 array of shape (g, nnz)
        Bucket of each label entry in each repetition.
    n_buckets : int
    softmax : bool
        Targets ``1 / (number of distinct buckets)`` (softmax) or 1.

    Returns
    -------
    tptr, tcol, tval, has
        ``tcol`` sorted within each (sample, repetition); ``has`` is 1 for a
        sample with at least one label.
    """
    n = len(indptr) - 1
    g = Hy.shape[0]
    base = indptr[0]
    mark = np.zeros(n_buckets, np.bool_)
    cap = (indptr[n] - base) * g
    tcol = np.empty(cap, np.int32)
    tval = np.empty(cap, np.float32)
    tptr = np.zeros(n * g + 1, np.int64)
    has = np.zeros(n, np.float32)
    q = 0
    for i in range(n):
        a = indptr[i] - base
        b = indptr[i + 1] - base
        if b > a:
            has[i] = 1
        for r in range(g):
            q0 = q
            for p in range(a, b):
                h = Hy[r, p]
                if not mark[h]:
                    mark[h] = True
                    tcol[q] = h
                    q += 1
            for t in range(q0, q):
                mark[tcol[t]] = False
            tcol[q0:q].sort()
            v = np.float32(1.0 / (q - q0)) if softmax and q > q0 else np.float32(1.0)
            for t in range(q0, q):
                tval[t] = v
            tptr[i * g + r + 1] = q
    return tptr, tcol[:q], tval[:q], has


@njit(**SERIAL)
def _adam_row(w, mrow, vrow, grad, col_active, all_active, alpha, lr, b1, b2, eps):
    # float32 arithmetic throughout, so that the loop vectorises
    a = np.float32(alpha)
    lr32 = np.float32(lr)
    b1_ = np.float32(b1)
    b2_ = np.float32(b2)
    c1 = np.float32(1.0 - b1)
    c2 = np.float32(1.0 - b2)
    e32 = np.float32(eps)
    if all_active:
        for c in range(w.shape[0]):
            gr = grad[c] + a * w[c]
            mm = b1_ * mrow[c] + c1 * gr
            vv = b2_ * vrow[c] + c2 * gr * gr
            mrow[c] = mm
            vrow[c] = vv
            w[c] -= lr32 * mm / (np.sqrt(vv) + e32)
        return
    for c in range(w.shape[0]):
        if col_active[c]:
            gr = grad[c] + a * w[c]
            mm = b1_ * mrow[c] + c1 * gr
            vv = b2_ * vrow[c] + c2 * gr * gr
            mrow[c] = mm
            vrow[c] = vv
            w[c] -= lr32 * mm / (np.sqrt(vv) + e32)


@njit(**SERIAL)
def sparse_backward_adam(indptr, indices, data, D, W, M, V, col_active, alpha, lr,
                         b1, b2, eps, slot):
    """Lazy Adam step on the rows of ``W`` whose feature is in the batch.

    The gradient of row ``j`` is ``sum_i X[i, j] * D[i, :] + alpha * W[j]``
    over the batch's samples ``i`` in increasing order.

    Parameters
    ----------
    indptr, indices, data : CSR arrays of the batch (n rows)
    D : float32 array of shape (n, m)
        Gradient of the loss with respect to ``X @ W``.
    W, M, V : float32 arrays of shape (n_features, m)
        Weights and Adam moments, updated in place.
    col_active : bool array of shape (m,)
        Columns that move (frozen repetitions are False).
    alpha, lr, b1, b2, eps : float
        L2 factor, Adam step size (bias correction included) and constants.
    slot : int64 array of shape (n_features,)
        Scratch, all zero on entry; left all zero.

    Returns
    -------
    n_touched : int
        Number of rows updated.
    """
    n = len(indptr) - 1
    m = D.shape[1]
    nnz = indptr[n] - indptr[0]
    touched = np.empty(nnz, np.int64)
    nt = 0
    # slot[j]: number of entries of feature j (first pass)
    for p in range(indptr[0], indptr[n]):
        j = indices[p]
        if slot[j] == 0:
            touched[nt] = j
            nt += 1
        slot[j] += 1
    off = np.empty(nt + 1, np.int64)
    off[0] = 0
    for t in range(nt):
        j = touched[t]
        off[t + 1] = off[t] + slot[j]
        slot[j] = t + 1  # now slot + 1
    fill = np.zeros(nt, np.int64)
    rows = np.empty(nnz, np.int64)
    vals = np.empty(nnz, np.float32)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            t = slot[indices[p]] - 1
            q = off[t] + fill[t]
            rows[q] = i
            vals[q] = data[p]
            fill[t] += 1
    acc = np.empty(m, np.float32)
    all_active = col_active.all()
    for t in range(nt):
        j = touched[t]
        slot[j] = 0
        for c in range(m):
            acc[c] = 0
        for q in range(off[t], off[t + 1]):
            x = vals[q]
            d = D[rows[q]]
            for c in range(m):
                acc[c] += x * d[c]
        _adam_row(W[j], M[j], V[j], acc, col_active, all_active, alpha, lr, b1, b2, eps)
    return nt


@njit(**SERIAL)
def adam_dense(P, M, V, G, row_active, alpha, lr, b1, b2, eps):
    """Adam step on a 2-D parameter whose row ``r`` belongs to repetition ``r``.

    ``P``, ``M``, ``V``, ``G`` have shape (g, size); rows where
    ``row_active`` is False are frozen. ``alpha`` adds ``alpha * P`` to the
    gradient (0 for biases).
    """
    ones = np.ones(P.shape[1], np.bool_)
    for r in range(P.shape[0]):
        if row_active[r]:
            _adam_row(P[r], M[r], V[r], G[r], ones, True, alpha, lr, b1, b2, eps)


@njit(**SERIAL)
def adam_all_rows(W, M, V, G, col_active, alpha, lr, b1, b2, eps):
    """Adam step on every row of ``W`` (dense inputs touch every feature)."""
    all_active = col_active.all()
    for j in range(W.shape[0]):
        _adam_row(W[j], M[j], V[j], G[j], col_active, all_active, alpha, lr, b1, b2, eps)
