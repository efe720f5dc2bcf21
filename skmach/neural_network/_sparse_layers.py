"""NumPy kernels of LSH-sparse layers: active-set selection, forward, backward, loss.

Shapes used throughout (``n`` samples in the minibatch):

- a *dense* activation is an ndarray ``(n, d)``; the network input may also be
  a CSR matrix.
- a *sparse* activation (:class:`SparseAct`) is ``idx`` / ``val`` of shape
  ``(n, w)``: for each sample the ``w`` neurons computed, their values, and a
  boolean ``mask`` of which of the ``w`` slots hold a real neuron (rows may
  have fewer than ``w`` active neurons; padding slots have value 0).

A layer ``z = W h + b`` stores ``W`` neuron-major, ``(n_out, n_in)``, so the
weights of an active neuron are one contiguous row. For an active set
``idx`` the forward pass gathers those rows per sample into a block
``(n, w, n_in)`` (or ``(n, w, w_in)`` when the input is itself sparse) and
does a batched matrix-vector product: exactly ``w * n_in`` multiply-adds per
sample. The backward pass scatters the weight gradient of each distinct
active neuron once (a sparse matrix product for dense inputs, a ``bincount``
for sparse ones).
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..utils._math import log_softmax

# Priority given to forced neurons (true labels): above any collision count.
_FORCED = float(1 << 20)


@dataclass
class SparseAct:
    """Per-sample active neurons: ``idx``, ``val`` and ``mask``, all ``(n, w)``."""

    idx: np.ndarray
    val: np.ndarray
    mask: np.ndarray

    @property
    def count(self):
        return self.mask.sum(axis=1)

    def to_csr(self, n_cols):
        n, w = self.idx.shape
        return sp.csr_matrix(
            (self.val.ravel(), self.idx.ravel(), np.arange(0, n * w + 1, w)),
            shape=(n, n_cols),
        )

    def to_dense(self, n_cols):
        out = np.zeros((self.idx.shape[0], n_cols), dtype=self.val.dtype)
        r, c = np.nonzero(self.mask)
        out[r, self.idx[r, c]] = self.val[r, c]
        return out


def csr_to_sparse_act(X):
    """Pad the rows of a CSR matrix into a :class:`SparseAct`."""
    X = sp.csr_matrix(X)
    n = X.shape[0]
    lengths = np.diff(X.indptr)
    w = max(int(lengths.max()) if n else 0, 1)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(X.nnz) - np.repeat(X.indptr[:-1], lengths)
    idx = np.zeros((n, w), dtype=np.int64)
    val = np.zeros((n, w), dtype=X.dtype)
    mask = np.zeros((n, w), dtype=bool)
    idx[rows, pos] = X.indices
    val[rows, pos] = X.data
    mask[rows, pos] = True
    return SparseAct(idx, val, mask)


# --------------------------------------------------------------------------
# Active-set selection
# --------------------------------------------------------------------------


def select_active(
    q_rows,
    q_neurons,
    n,
    n_neurons,
    budget,
    *,
    selection="topk",
    threshold=2,
    n_pad=None,
    rng=None,
    priority=None,
    forced_rows=None,
    forced_neurons=None,
):
    """Choose each sample's active neurons from its LSH collisions.

    Parameters
    ----------
    q_rows, q_neurons : ndarray of int
        One entry per (sample, table) collision, from :meth:`LSHTables.query`.
    n, n_neurons : int
        Samples in the batch, neurons in the layer.
    budget : int
        At most this many neurons per sample (besides forced ones).
    selection : {"union", "topk", "sample", "threshold"}
        ``"union"``: any retrieved neuron, a random subset when more than the
        budget come back; ``"topk"``: the ones with the most collisions (ties
        random); ``"sample"``: with ``rng`` (training), a random subset drawn
        without replacement with probability proportional to the collision
        count (adaptive-dropout-like), and ``"topk"`` without ``rng``
        (prediction); ``"threshold"``: only neurons colliding in at least
        ``threshold`` tables, most collisions first.
    n_pad : int, optional
        Rows with fewer than ``n_pad`` selected neurons are padded with random
        neurons up to ``n_pad`` (default: the budget).
    rng : numpy.random.Generator, optional
        Training: random tie-breaks and random padding. When None (prediction)
        the fixed ``priority`` breaks ties and picks the padding neurons, so
        the result for a sample does not depend on the rest of the batch.
    priority : ndarray of shape (n_neurons,), values in [0, 1)
        Fixed tie-break / padding order used when ``rng`` is None.
    forced_rows, forced_neurons : ndarray of int, optional
        Neurons that must be active (the true labels in the output layer);
        they count towards the budget but are never dropped.

    Returns
    -------
    idx : ndarray (n, w) of int64
    mask : ndarray (n, w) of bool
    forced : ndarray (n, w) of bool
        Which slots hold a forced neuron.
    """
    budget = int(budget)
    n_pad = budget if n_pad is None else int(min(n_pad, budget))
    if selection not in ("union", "topk", "sample", "threshold"):
        raise ValueError(
            f"selection must be 'union', 'topk', 'sample' or 'threshold'; got {selection!r}"
        )
    pad = None
    if n_pad > 0:
        if rng is not None:
            perm = rng.permutation(n_neurons)
            start = rng.integers(0, n_neurons, n)
            pad = perm[(start[:, None] + np.arange(n_pad)) % n_neurons]
        else:
            pad = np.broadcast_to(np.argsort(-priority, kind="stable")[:n_pad], (n, n_pad))
    if n * n_neurons <= _DENSE_SELECT_MAX:
        # Count the collisions straight into a dense (n, n_neurons) array.
        w = np.bincount(np.asarray(q_rows, dtype=np.int64) * n_neurons
                        + np.asarray(q_neurons, dtype=np.int64),
                        minlength=n * n_neurons).astype(np.float64)
        if forced_rows is not None and len(forced_rows):
            fkeys = (np.asarray(forced_rows, dtype=np.int64) * n_neurons
                     + np.asarray(forced_neurons, dtype=np.int64))
            np.add.at(w, fkeys, _FORCED)
        present = w > 0
        if pad is not None:
            present[(np.arange(n, dtype=np.int64)[:, None] * n_neurons + pad).ravel()] = True
        return _select_dense(w.reshape(n, n_neurons), present.reshape(n, n_neurons), n,
                             n_neurons, budget, selection, threshold, n_pad, rng, priority)
    rows = [np.asarray(q_rows, dtype=np.int64)]
    cols = [np.asarray(q_neurons, dtype=np.int64)]
    weights = [np.ones(len(rows[0]))]
    if forced_rows is not None and len(forced_rows):
        rows.append(np.asarray(forced_rows, dtype=np.int64))
        cols.append(np.asarray(forced_neurons, dtype=np.int64))
        weights.append(np.full(len(forced_rows), _FORCED))
    if pad is not None:
        rows.append(np.repeat(np.arange(n, dtype=np.int64), n_pad))
        cols.append(pad.ravel().astype(np.int64))
        weights.append(np.zeros(pad.size))
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    keys = rows * n_neurons + cols
    weights = np.concatenate(weights)
    ukeys, inv = np.unique(keys, return_inverse=True)
    w = np.bincount(inv.ravel(), weights=weights, minlength=len(ukeys))
    urows = ukeys // n_neurons
    ucols = ukeys % n_neurons
    forced = w >= _FORCED
    score = _score(w - forced * _FORCED, selection, threshold)
    tie = rng.random(len(ukeys)) if rng is not None else priority[ucols]
    prio = score + 0.5 * tie
    if selection == "sample" and rng is not None:
        prio = _gumbel_prio(score, tie, rng)
    prio = prio + forced * _FORCED
    order = np.lexsort((-prio, urows))
    urows, ucols, score, forced = urows[order], ucols[order], score[order], forced[order]
    row_start = np.searchsorted(urows, np.arange(n))
    rank = np.arange(len(urows)) - row_start[urows]
    keep = forced | ((rank < budget) & ((score > 0) | (rank < n_pad)))
    urows, ucols, rank, forced = urows[keep], ucols[keep], rank[keep], forced[keep]
    width = max(int(rank.max()) + 1 if len(rank) else 1, 1)
    idx = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=bool)
    fmask = np.zeros((n, width), dtype=bool)
    idx[urows, rank] = ucols
    mask[urows, rank] = True
    fmask[urows, rank] = forced
    return idx, mask, fmask


# Above this many (sample, neuron) pairs per batch the selection sorts the
# collisions instead of counting them in a dense (n, n_neurons) array.
_DENSE_SELECT_MAX = 1 << 21


def _gumbel_prio(score, low, rng):
    """Gumbel-top-k keys: sampling without replacement proportional to ``score``.

    Neurons with ``score == 0`` keep their (lower) key ``low`` in [0, 1).
    """
    pos = score > 0
    g = -np.log(-np.log(rng.random(score.shape) * (1 - 1e-12) + 1e-12))
    with np.errstate(divide="ignore"):
        keyed = 1e3 + np.log(np.where(pos, score, 1.0)) + g
    return np.where(pos, keyed, low)


def _score(count, selection, threshold):
    if selection == "union":
        return (count > 0).astype(np.float64)
    if selection in ("topk", "sample"):
        return count
    return np.where(count >= threshold, count, 0.0)


def _select_dense(w, present, n, n_neurons, budget, selection, threshold, n_pad, rng,
                  priority):
    """Same result as the sorting path, with O(n * n_neurons) dense counts.

    ``w``: collision counts (+ ``_FORCED`` for forced neurons), ``present``:
    collided, forced or padding candidate; both ``(n, n_neurons)``.
    """
    forced = w >= _FORCED
    score = _score(w - forced * _FORCED, selection, threshold)
    tie = rng.random((n, n_neurons)) if rng is not None else np.broadcast_to(priority, w.shape)
    # Padding candidates must rank above non-candidates: weight 0 but present.
    prio = score + 0.25 * tie + 0.5 * present
    if selection == "sample" and rng is not None:
        prio = _gumbel_prio(score, prio - score, rng)
    prio = prio + forced * _FORCED
    width = max(budget, int(forced.sum(axis=1).max()) if n else 1, 1)
    width = min(width, n_neurons)
    if width < n_neurons:
        idx = np.argpartition(-prio, width - 1, axis=1)[:, :width]
    else:
        idx = np.broadcast_to(np.arange(n_neurons), (n, n_neurons)).copy()
    p = np.take_along_axis(prio, idx, axis=1)
    order = np.argsort(-p, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    rank = np.arange(width)[None, :]
    f = np.take_along_axis(forced, idx, axis=1)
    sc = np.take_along_axis(score, idx, axis=1)
    pres = np.take_along_axis(present, idx, axis=1)
    mask = f | ((rank < budget) & ((sc > 0) | ((rank < n_pad) & pres)))
    return idx.astype(np.int64), mask, f & mask


# --------------------------------------------------------------------------
# Dense layer
# --------------------------------------------------------------------------


def dense_forward(W, b, x):
    """``z = x W^T + b`` for a dense, CSR or :class:`SparseAct` input."""
    if isinstance(x, SparseAct):
        x = x.to_csr(W.shape[1])
    z = x @ W.T
    return np.asarray(z) + b


def dense_backward(W, x, dz, need_dx):
    """Gradients of a dense layer.

    Returns ``dW`` (``(n_out, n_in)``, or for a CSR input ``(cols, dW[:, cols].T)``
    with only the input columns present in the batch), ``db`` and ``dx``
    (``None`` unless ``need_dx``; for a :class:`SparseAct` input, the gradient
    at its active slots only).
    """
    db = dz.sum(axis=0)
    dx = None
    if isinstance(x, SparseAct):
        dW = np.asarray((x.to_csr(W.shape[1]).T @ dz).T)
        if need_dx:
            # dx[i, t] = sum_o dz[i, o] W[o, idx[i, t]]
            WT = W.T[x.idx]  # (n, w, n_out)
            dx = np.matmul(WT, dz[:, :, None])[:, :, 0] * x.mask
        return dW, db, dx
    if sp.issparse(x):
        cols = np.unique(x.indices)
        dWT_cols = np.asarray(x[:, cols].T @ dz)
        return (cols, dWT_cols), db, None
    dW = dz.T @ x
    if need_dx:
        dx = dz @ W
    return dW, db, dx


# --------------------------------------------------------------------------
# LSH-sparse layer
# --------------------------------------------------------------------------


def lsh_forward(W, b, x, idx, mask):
    """Pre-activations of the active neurons only.

    Parameters
    ----------
    W : ndarray (n_out, n_in)
    b : ndarray (n_out,)
    x : ndarray (n, n_in) or SparseAct
    idx, mask : ndarray (n, w)

    Returns
    -------
    z : ndarray (n, w), 0 at padding slots
    Wg : ndarray or None
        For a sparse input, the gathered weight block ``(n, w, w_in)`` (kept
        for the backward pass); None for a dense input, whose per-sample
        blocks ``W[idx[i]]`` are small enough to gather again.
    """
    if isinstance(x, SparseAct):
        Wg = W[idx[:, :, None], x.idx[:, None, :]]  # (n, w, w_in)
        z = np.matmul(Wg, x.val[:, :, None])[:, :, 0]
    else:
        # One gather + matrix-vector product per sample: exactly w * n_in
        # multiply-adds each, and faster in NumPy than materialising the whole
        # (n, w, n_in) block (fancy indexing of a 3-D block is slow).
        Wg = None
        x = np.asarray(x)
        z = np.empty(idx.shape, dtype=np.result_type(W.dtype, x.dtype))
        for i in range(idx.shape[0]):
            np.dot(W.take(idx[i], axis=0), x[i], out=z[i])
    z += b[idx]
    z *= mask
    return z, Wg


def lsh_backward(W, x, idx, mask, dz, Wg, need_dx):
    """Gradients of an LSH-sparse layer w.r.t. the active neurons only.

    Returns
    -------
    rows : ndarray of int64
        The distinct active neurons of the batch (sorted).
    dW_rows : ndarray (len(rows), n_in)
    db_rows : ndarray (len(rows),)
    dx : ndarray (n, n_in), or (n, w_in) at the input's active slots, or None
    """
    dz = dz * mask
    sample, slot = np.nonzero(mask)
    rows, inv = np.unique(idx[sample, slot], return_inverse=True)
    inv = inv.ravel()
    g = dz[sample, slot]
    n_in = W.shape[1]
    db_rows = np.bincount(inv, weights=g, minlength=len(rows)).astype(W.dtype, copy=False)
    if isinstance(x, SparseAct):
        keys = inv[:, None] * n_in + x.idx[sample]  # (E, w_in)
        vals = g[:, None] * x.val[sample]
        dW_rows = np.bincount(
            keys.ravel(), weights=vals.ravel(), minlength=len(rows) * n_in
        ).reshape(len(rows), n_in).astype(W.dtype, copy=False)
    else:
        S = sp.csr_matrix((g, (inv, sample)), shape=(len(rows), x.shape[0]))
        dW_rows = np.asarray(S @ x).astype(W.dtype, copy=False)
    dx = None
    if need_dx:
        if Wg is None:
            dx = np.empty((idx.shape[0], n_in), dtype=np.result_type(W.dtype, dz.dtype))
            for i in range(idx.shape[0]):
                np.dot(dz[i], W.take(idx[i], axis=0), out=dx[i])
        else:
            dx = np.matmul(dz[:, None, :], Wg)[:, 0, :]
        if isinstance(x, SparseAct):
            dx *= x.mask
    return rows, dW_rows, db_rows, dx


# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


def softmax_cross_entropy(z, target, mask=None):
    """Softmax cross-entropy against target distributions, and its gradient.

    Parameters
    ----------
    z : ndarray (n, w)
        Scores; slots where ``mask`` is False are excluded from the softmax
        (the normalisation runs over the active set only).
    target : ndarray (n, w)
        Target weights, each row summing to 1 (one-hot for multi-class,
        uniform over the true labels for multi-label) or to 0 (a multi-label
        row without labels: it contributes neither loss nor gradient).
    mask : ndarray (n, w) of bool, optional

    Returns
    -------
    loss : float
        Sum over the rows (divide by n for the mean).
    dz : ndarray (n, w)
        Gradient of the summed loss.
    """
    if mask is not None:
        z = np.where(mask, z, -np.inf)
    logp = log_softmax(z, axis=1)
    p = np.exp(logp)
    tsum = target.sum(axis=1, keepdims=True)
    nz = target > 0
    loss = -float(np.sum(target[nz] * logp[nz]))
    dz = p * tsum - target
    return loss, dz
