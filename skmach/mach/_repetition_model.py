"""The built-in per-repetition model of MACH (NumPy/SciPy reference).

Each repetition ``r`` is a B-way classifier from the features to the bucket
``h_r(y)`` of the label: a sparse-input linear model (``hidden_layer_size=0``)
or a network with one ReLU hidden layer, trained by minibatch Adam.

Repetitions never exchange information. For speed, a contiguous *group* of
repetitions is trained in one pass over the data, with their weights stored
side by side, so that one sparse product ``X @ W`` serves the whole group.
Everything that is computed is column-separable (per-repetition softmax,
per-repetition weights drawn from the repetition's own seed, element-wise
Adam, per-repetition early stopping), and every repetition sees the same
minibatch order, so a repetition's weights do not depend on which group it
was trained in: the model is the same whatever ``n_jobs`` is.

Parameter layout for ``g`` repetitions, ``d`` features, ``H`` hidden units
and ``B`` buckets:

- linear: ``W`` (d, g*B), ``b`` (g*B,)
- hidden: ``W1`` (d, g*H), ``b1`` (g*H,), ``W2`` (g, H, B), ``b2`` (g, B)
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._kernels import _mach_train as _k
from .._optim import AdamOptimizer
from ..utils._math import log_softmax, sigmoid, softmax

DTYPE = np.float32
# rows of the training set gathered at once when shuffling an epoch
CHUNK_ROWS = 8192


@dataclass
class TrainConfig:
    n_buckets: int
    hidden_layer_size: int
    loss: str  # "softmax" | "sigmoid"
    n_epochs: int
    batch_size: int
    learning_rate: float
    alpha: float
    early_stopping: bool
    n_iter_no_change: int
    tol: float
    alpha_scaled: float = 0.0  # alpha / n_samples, set by train_group
    learning_rate_schedule: str = "constant"  # | "linear": to 0 over the epochs


def scheduled_learning_rate(cfg, step, n_steps):
    """Adam's step size for minibatch ``step`` (0-based) of ``n_steps``.

    ``"constant"``: ``cfg.learning_rate`` throughout; ``"linear"``: from
    ``cfg.learning_rate`` down towards 0, ``lr * (1 - step / n_steps)``.

    >>> cfg = TrainConfig(8, 0, "softmax", 2, 4, 0.1, 0.0, False, 1, 0.0,
    ...                   learning_rate_schedule="linear")
    >>> [round(scheduled_learning_rate(cfg, t, 4), 3) for t in range(4)]
    [0.1, 0.075, 0.05, 0.025]
    """
    if cfg.learning_rate_schedule == "linear" and n_steps > 0:
        return cfg.learning_rate * (1.0 - step / n_steps)
    return cfg.learning_rate


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------

def init_params(n_features, n_buckets, hidden, seeds):
    """Weights of the repetitions whose seeds are given, side by side.

    Each repetition's block is drawn from its own seed (Glorot uniform, as
    scikit-learn's MLP), so it is the same whichever group it belongs to.
    """
    g, B, d, H = len(seeds), n_buckets, n_features, hidden
    rngs = [np.random.default_rng(s) for s in seeds]
    if H == 0:
        # The linear model is convex: start from zero (uniform buckets).
        return [np.zeros((d, g * B), DTYPE), np.zeros(g * B, DTYPE)]
    W1 = np.empty((d, g * H), DTYPE)
    W2 = np.empty((g, H, B), DTYPE)
    lim1 = np.sqrt(6.0 / (d + H))
    lim2 = np.sqrt(6.0 / (H + B))
    for j, rng in enumerate(rngs):
        W1[:, j * H:(j + 1) * H] = rng.uniform(-lim1, lim1, (d, H))
        W2[j] = rng.uniform(-lim2, lim2, (H, B))
    return [W1, np.zeros(g * H, DTYPE), W2, np.zeros((g, B), DTYPE)]


def n_repetitions_of(params, n_buckets, hidden):
    """Number of repetitions stored in ``params``."""
    return params[2].shape[0] if hidden else params[1].shape[0] // n_buckets


def slice_params(params, start, stop, n_buckets, hidden):
    """Copy of repetitions ``start:stop`` (contiguous arrays).

    Always a copy, even of the whole model: training updates it in place,
    and a ``partial_fit`` interrupted half-way must leave the model as it was.
    """
    B, H = n_buckets, hidden
    if H == 0:
        W, b = params
        return [W[:, start * B:stop * B].copy(order="C"), b[start * B:stop * B].copy()]
    W1, b1, W2, b2 = params
    return [
        W1[:, start * H:stop * H].copy(order="C"),
        b1[start * H:stop * H].copy(),
        W2[start:stop].copy(),
        b2[start:stop].copy(),
    ]


def concat_params(groups, hidden):
    """Inverse of :func:`slice_params` over consecutive groups.

    First-layer weights go side by side, everything else is stacked. One
    array at a time, and each group's entry is set to None once copied (the
    groups are lists, consumed): the peak is the model plus one of its
    arrays, not twice the model. ``hidden`` is kept for the call sites; the
    layout is the same for both models.
    """
    if len(groups) == 1:
        return list(groups[0])
    out = []
    for i in range(len(groups[0])):
        parts = [g[i] for g in groups]
        for g in groups:
            g[i] = None
        out.append(np.concatenate(parts, axis=1 if i == 0 else 0))
        del parts
    return out


def param_masks(active, n_buckets, hidden):
    """Adam masks that freeze the repetitions where ``active`` is False."""
    if hidden == 0:
        col = np.repeat(active, n_buckets)
        return [col[None, :], col]
    col = np.repeat(active, hidden)
    return [col[None, :], col, active[:, None, None], active[:, None]]


# --------------------------------------------------------------------------
# forward / backward
# --------------------------------------------------------------------------

def matmul_blocks(X, W, width):
    """``X @ W`` computed ``width`` columns at a time when ``X`` is dense.

    BLAS may round a column of a product differently depending on how many
    columns the product has. One product per repetition block makes each
    repetition's numbers independent of its group (and so of ``n_jobs``).
    Sparse products (SciPy) are column-separable already.
    """
    if sp.issparse(X) or sp.issparse(W):
        if sp.issparse(X) and X.format == "csc":
            # X.T of a CSR batch: the row-wise CSR kernel accumulates in the
            # same order as the CSC scatter and is about 30% faster
            X = X.tocsr()
        return np.asarray(X @ W)
    out = np.empty((X.shape[0], W.shape[1]), dtype=np.result_type(X, W))
    for s in range(0, W.shape[1], width):
        out[:, s:s + width] = X @ np.ascontiguousarray(W[:, s:s + width])
    return out


def forward(X, params, n_buckets, hidden):
    """Logits of shape (n, g, B), and the hidden activations (or None)."""
    n = X.shape[0]
    if hidden == 0:
        W, b = params
        Z = matmul_blocks(X, W, n_buckets)
        Z += b
        return Z.reshape(n, -1, n_buckets), None
    W1, b1, W2, b2 = params
    A = matmul_blocks(X, W1, hidden)
    A += b1
    np.maximum(A, 0, out=A)
    g = W2.shape[0]
    Ag = A.reshape(n, g, hidden).transpose(1, 0, 2)  # (g, n, H)
    Z = np.matmul(Ag, W2)  # (g, n, B)
    Z += b2[:, None, :]
    return Z.transpose(1, 0, 2), A


def output_probabilities(Z, loss):
    """Bucket probabilities from logits (n, g, B)."""
    return softmax(Z, axis=-1) if loss == "softmax" else sigmoid(Z)


def backward(X, params, A, dZ, n_buckets, hidden, alpha_scaled, rows=None):
    """Gradients for the parameters given ``dZ`` (n, g, B) (already averaged).

    With ``rows`` (the features present in a sparse minibatch), ``X`` has
    only those columns and the first-layer gradient is returned for those
    rows only (row-sparse, for lazy Adam).
    """
    n = X.shape[0]
    W = params[0]
    Wr = W if rows is None else W[rows]
    if hidden == 0:
        D = dZ.reshape(n, -1)
        gW = matmul_blocks(X.T, D, n_buckets)
        if alpha_scaled:
            gW += alpha_scaled * Wr
        return [gW, D.sum(axis=0)]
    _, _, W2, _ = params
    g = W2.shape[0]
    dZg = np.ascontiguousarray(dZ.transpose(1, 0, 2))  # (g, n, B)
    Ag = A.reshape(n, g, hidden).transpose(1, 0, 2)  # (g, n, H)
    gW2 = np.matmul(Ag.transpose(0, 2, 1), dZg)  # (g, H, B)
    gb2 = dZg.sum(axis=1)
    dA = np.matmul(dZg, W2.transpose(0, 2, 1))  # (g, n, H)
    dA = dA.transpose(1, 0, 2).reshape(n, g * hidden)
    dA *= A > 0
    gW1 = matmul_blocks(X.T, dA, hidden)
    if alpha_scaled:
        gW1 += alpha_scaled * Wr
        gW2 += alpha_scaled * W2
    return [gW1, dA.sum(axis=0), gW2, gb2]


def local_columns(Xb, n_features):
    """Features present in a CSR minibatch, and the batch restricted to them."""
    present = np.zeros(n_features, dtype=bool)
    present[Xb.indices] = True
    cols = np.flatnonzero(present)
    remap = np.cumsum(present) - 1
    Xl = sp.csr_matrix((Xb.data, remap[Xb.indices], Xb.indptr), shape=(Xb.shape[0], len(cols)))
    return cols, Xl


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------

def bucket_targets(y, buckets_of, n, g, n_buckets, loss):
    """Target array T of shape (n, g, B) and per-sample weights of the loss.

    Parameters
    ----------
    y : ndarray of int (multi-class) or CSR indicator (multi-label)
    buckets_of : callable
        ``buckets_of(class_indices)`` -> bucket ids (g, len(class_indices)).
    loss : {"softmax", "sigmoid"}
        For multi-label softmax the target spreads evenly over the sample's
        distinct buckets; samples with no label get weight 0.
    """
    B = n_buckets
    T = np.zeros((n, g, B), DTYPE)
    rep = np.arange(g)[:, None]
    if not sp.issparse(y):
        Hy = buckets_of(y).astype(np.int64)  # (g, n)
        T[np.arange(n)[None, :], rep, Hy] = 1.0
        return T, None
    rows = np.repeat(np.arange(n), np.diff(y.indptr))
    Hy = buckets_of(y.indices).astype(np.int64)  # (g, nnz)
    T[np.broadcast_to(rows, Hy.shape), np.broadcast_to(rep, Hy.shape), Hy] = 1.0
    if loss == "sigmoid":
        return T, None
    counts = T.sum(axis=2, keepdims=True)
    has = counts[:, 0, 0] > 0
    np.divide(T, counts, out=T, where=counts > 0)
    return T, has.astype(DTYPE)


def loss_and_grad_logits(Z, T, loss, weights):
    """Per-repetition mean loss (g,) and dL/dZ (n, g, B) of the weighted mean loss."""
    n = Z.shape[0]
    w = np.ones(n, DTYPE) if weights is None else weights
    wsum = float(w.sum())
    if wsum <= 0:
        return np.zeros(Z.shape[1]), np.zeros_like(Z)
    if loss == "softmax":
        logP = log_softmax(Z, axis=-1)
        per = -(T * logP).sum(axis=2)  # (n, g)
        dZ = np.exp(logP)
        dZ -= T  # T rows sum to 1, or to 0 for samples without a label
        dZ *= T.sum(axis=2, keepdims=True) > 0  # ... which contribute nothing
    else:
        # Binary cross-entropy with logits, softplus(z) - t*z, and sigmoid(z)
        # from one exp(-|z|): exact for any z, 3 transcendental passes not 5.
        e = np.exp(-np.abs(Z))
        per = np.maximum(Z, 0)
        per += np.log1p(e)
        per -= T * Z
        per = per.sum(axis=2)
        inv = 1 / (1 + e)
        dZ = np.where(Z >= 0, inv, e * inv)
        dZ -= T
    scale = (w / wsum).astype(DTYPE)
    dZ *= scale[:, None, None]
    # a column-wise reduction rather than a BLAS product: see matmul_blocks
    return (per * scale[:, None]).sum(axis=0), dZ


# --------------------------------------------------------------------------
# sparse targets (what the kernels use)
# --------------------------------------------------------------------------

def sparse_targets(y, buckets_of, n, g, n_buckets, loss):
    """The targets of :func:`bucket_targets` as lists of non-zeros.

    Returns
    -------
    tptr : int64 array of shape (n * g + 1,)
        Targets of sample ``i`` in repetition ``r``:
        ``tcol[tptr[i * g + r]:tptr[i * g + r + 1]]`` (distinct buckets) with
        values ``tval[...]``.
    tcol : int32 array
    tval : float32 array
    weights : float32 array of shape (n,) or None
        As :func:`bucket_targets`: multi-label softmax gives weight 0 to a
        sample without labels.
    """
    B = n_buckets
    if not sp.issparse(y):
        Hy = buckets_of(y).astype(np.int32)  # (g, n)
        tcol = np.ascontiguousarray(Hy.T).reshape(-1)
        return (np.arange(n * g + 1, dtype=np.int64), tcol,
                np.ones(n * g, DTYPE), None)
    Hy = buckets_of(y.indices[y.indptr[0]:y.indptr[-1]]).astype(np.int64)  # (g, nnz)
    tptr, tcol, tval, has = _k.multilabel_targets(y.indptr, Hy, B, loss == "softmax")
    return tptr, tcol, tval, (has if loss == "softmax" else None)


# --------------------------------------------------------------------------
# one minibatch step: compiled kernels, and the NumPy reference
# --------------------------------------------------------------------------

def _scale(weights, n):
    """Per-sample factor of the weighted mean loss (None: nothing counts)."""
    w = np.ones(n, DTYPE) if weights is None else weights.astype(DTYPE, copy=False)
    wsum = float(w.sum())
    if wsum <= 0:
        return None
    return (w / wsum).astype(DTYPE)


def _csr_parts(Xb):
    return Xb.indptr, Xb.indices, Xb.data


def forward_fast(X, params, n_buckets, hidden, parallel=False):
    """:func:`forward` with the compiled kernels.

    Training (``parallel=False``): the compiled sparse product for CSR
    ``X``, BLAS for the rest. Prediction (``parallel=True``): every product
    row by row on Numba's threads, so that a sample's scores do not depend
    on the other samples of the batch.

    Returns logits as a (n, g, B) view and the hidden activations (or None).
    """
    if not sp.issparse(X) and not parallel:
        return forward(X.astype(DTYPE, copy=False), params, n_buckets, hidden)
    W, b = params[0], params[1]
    n = X.shape[0]
    out = np.empty((n, W.shape[1]), DTYPE)
    if sp.issparse(X):
        X = X.tocsr()
        fwd = _k.sparse_forward_parallel if parallel else _k.sparse_forward
        fwd(*_csr_parts(X), W, b, hidden > 0, out)
    else:
        _k.dense_forward_parallel(np.ascontiguousarray(X), W, b, hidden > 0, out)
    if hidden == 0:
        return out.reshape(n, -1, n_buckets), None
    W2, b2 = params[2], params[3]
    if parallel:
        Z = np.empty((n, W2.shape[0], n_buckets), DTYPE)
        _k.output_layer_parallel(out, W2, b2, Z)
        return Z, out
    Ag = out.reshape(n, -1, hidden).transpose(1, 0, 2)  # (g, n, H)
    Zg = np.matmul(Ag, W2)  # (g, n, B)
    Zg += b2[:, None, :]
    return Zg.transpose(1, 0, 2), out


def step_kernels(Xb, params, opt, targets, scale, cfg, active):
    """One Adam step with the compiled kernels; returns the loss per repetition."""
    B, H = cfg.n_buckets, cfg.hidden_layer_size
    tptr, tcol, tval = targets
    g = len(active)
    nb = Xb.shape[0]
    lval = np.zeros(g)
    Z, A = forward_fast(Xb, params, B, H)
    _k.logits_grad(Z, tptr, tcol, tval, scale, cfg.loss == "softmax", lval)
    opt.t += 1
    lr = opt._step_size()
    consts = (lr, opt.beta_1, opt.beta_2, opt.epsilon)
    alpha = cfg.alpha_scaled
    width = H if H else B
    col_active = np.repeat(active, width)
    if H == 0:
        D = Z.reshape(nb, g * B)  # Z holds dL/dZ now
        gb = D.sum(axis=0)
    else:
        W2 = params[2]
        dZg = Z.transpose(1, 0, 2)  # (g, n, B), contiguous
        Ag = A.reshape(nb, g, H).transpose(1, 0, 2)  # (g, n, H)
        gW2 = np.matmul(Ag.transpose(0, 2, 1), dZg)  # (g, H, B)
        gb2 = dZg.sum(axis=1)
        dA = np.matmul(dZg, W2.transpose(0, 2, 1))  # (g, n, H)
        D = dA.transpose(1, 0, 2).reshape(nb, g * H)
        D *= A > 0
        gb = D.sum(axis=0)
        _k.adam_dense(W2.reshape(g, H * B), opt.ms[2].reshape(g, H * B),
                      opt.vs[2].reshape(g, H * B), gW2.reshape(g, H * B), active, alpha, *consts)
        _k.adam_dense(params[3], opt.ms[3], opt.vs[3], gb2, active, 0.0, *consts)
    W, M, V = params[0], opt.ms[0], opt.vs[0]
    if sp.issparse(Xb):
        _k.sparse_backward_adam(*_csr_parts(Xb), D, W, M, V, col_active, alpha, *consts,
                                opt.scratch)
    else:
        G = matmul_blocks(Xb.astype(DTYPE, copy=False).T, D, width)
        _k.adam_all_rows(W, M, V, G, col_active, alpha, *consts)
    _k.adam_dense(params[1].reshape(g, width), opt.ms[1].reshape(g, width),
                  opt.vs[1].reshape(g, width), gb.reshape(g, width), active, 0.0, *consts)
    return lval


def step_reference(Xb, y_b, buckets_of, params, opt, weights, cfg, active):
    """The NumPy reference of :func:`step_kernels` (dense targets).

    The same algorithm: lazy Adam on the rows of the features present in a
    sparse batch (every row for a dense batch).
    """
    B, H = cfg.n_buckets, cfg.hidden_layer_size
    g = len(active)
    nb = Xb.shape[0]
    Z, A = forward(Xb, params, B, H)
    T, tw = bucket_targets(y_b, buckets_of, nb, g, B, cfg.loss)
    lval, dZ = loss_and_grad_logits(Z, T, cfg.loss, _combine(weights, tw))
    masks = None if active.all() else param_masks(active, B, H)
    if sp.issparse(Xb):
        cols, Xl = local_columns(Xb, Xb.shape[1])
        grads = backward(Xl, params, A, dZ, B, H, cfg.alpha_scaled, rows=cols)
        rows = [cols] + [None] * (len(params) - 1)
    else:
        grads = backward(Xb, params, A, dZ, B, H, cfg.alpha_scaled)
        rows = None
    opt.step(grads, rows=rows, masks=masks)
    return lval


def batch_loss(X, y, buckets_of, params, weights, cfg, g):
    """Weighted mean loss per repetition (validation), with the kernels."""
    B, H = cfg.n_buckets, cfg.hidden_layer_size
    tptr, tcol, tval, tw = sparse_targets(y, buckets_of, X.shape[0], g, B, cfg.loss)
    scale = _scale(_combine(weights, tw), X.shape[0])
    lval = np.zeros(g)
    if scale is None:
        return lval
    Z, _ = forward_fast(X, params, B, H)
    _k.logits_grad(np.ascontiguousarray(Z), tptr, tcol, tval, scale, cfg.loss == "softmax",
                   lval)
    return lval


# --------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------

def train_group(X, y, sample_weight, buckets_of, params, opt_state, cfg, rep_seeds,
                epoch_orders, val_index=None, n_total=None, engine="kernels",
                progress=None):
    """Train one group of repetitions.

    Parameters
    ----------
    X : CSR matrix or ndarray (float32 or float64), training rows only
    y : ndarray of int or CSR indicator, aligned with X
    sample_weight : ndarray or None
    buckets_of : callable
        Bucket ids of class indices for this group's repetitions (g, m).
    params : list of ndarray or None
        Current weights (``None``: initialise from ``rep_seeds``).
    opt_state : dict or None
        Adam moments and step of a previous call (``partial_fit``).
    cfg : TrainConfig
    epoch_orders : list of ndarray
        The minibatch order of each epoch (shared by all repetitions).
    val_index : ndarray or None
        Rows of ``X`` held out for early stopping (not in ``epoch_orders``).
    engine : {"kernels", "reference"}
        The compiled kernels, or the NumPy reference they are tested against.
    progress : callable or None
        Called as ``progress(g, loss)`` after each epoch (a progress bar).

    Returns
    -------
    dict with params, opt_state, loss_curves (n_epochs_run, g), n_iter (g,),
    validation_scores (or None).
    """
    g = len(rep_seeds)
    B, H = cfg.n_buckets, cfg.hidden_layer_size
    n_features = X.shape[1]
    if params is None:
        params = init_params(n_features, B, H, rep_seeds)
    opt = AdamOptimizer(params, learning_rate=cfg.learning_rate)
    if opt_state is not None:
        opt.ms, opt.vs, opt.t = opt_state["ms"], opt_state["vs"], opt_state["t"]
    opt.scratch = np.zeros(n_features, dtype=np.int64)
    n_fit = len(epoch_orders[0]) if epoch_orders else 0
    cfg = dataclasses.replace(cfg, alpha_scaled=cfg.alpha / max(1, n_total if n_total else n_fit))
    if engine == "reference" and sp.issparse(X):
        X = X.astype(DTYPE)

    if val_index is not None:
        Xv = X[val_index]
        yv = y[val_index]
        wv = None if sample_weight is None else sample_weight[val_index]

    active = np.ones(g, dtype=bool)
    best = np.full(g, np.inf)
    best_params = [p.copy() for p in params] if val_index is not None else None
    no_improve = np.zeros(g, dtype=int)
    n_iter = np.zeros(g, dtype=int)
    curves, val_curves = [], []
    n_steps = sum(-(-len(o) // cfg.batch_size) for o in epoch_orders)
    step = 0
    for order in epoch_orders:
        epoch_loss = np.zeros(g)
        seen = 0.0
        for _, Xb, yb, wbatch in _minibatches(X, y, sample_weight, order, cfg.batch_size):
            nb = Xb.shape[0]
            opt.learning_rate = scheduled_learning_rate(cfg, step, n_steps)
            step += 1
            if engine == "reference":
                lval = step_reference(Xb, yb, buckets_of, params, opt, wbatch, cfg, active)
                _, tw = bucket_targets(yb, buckets_of, nb, g, B, cfg.loss) if sp.issparse(yb) \
                    else (None, None)
            else:
                tptr, tcol, tval, tw = sparse_targets(yb, buckets_of, nb, g, B, cfg.loss)
                scale = _scale(_combine(wbatch, tw), nb)
                if scale is None:  # nothing in this batch counts
                    continue
                lval = step_kernels(Xb, params, opt, (tptr, tcol, tval), scale, cfg, active)
            wb = _combine(wbatch, tw)
            bw = nb if wb is None else float(wb.sum())
            epoch_loss += lval * bw
            seen += bw
        epoch_loss /= max(seen, 1e-12)
        curves.append(epoch_loss)
        n_iter += active
        if val_index is not None:
            vloss = batch_loss(Xv, yv, buckets_of, params, wv, cfg, g)
            val_curves.append(vloss)
            crit = vloss
        else:
            crit = epoch_loss
        improved = crit < best - cfg.tol
        no_improve = np.where(improved, 0, no_improve + 1)
        if best_params is not None:
            _copy_reps(best_params, params, improved & active, B, H)
        best = np.where(improved, np.minimum(best, crit), best)
        active &= no_improve < cfg.n_iter_no_change
        if progress is not None:
            progress(g, float(np.mean(epoch_loss)))
        if not active.any():
            break
    if best_params is not None:
        params = best_params
    state = {"ms": opt.ms, "vs": opt.vs, "t": opt.t}
    return {
        "params": params,
        "opt_state": state,
        "loss_curves": np.array(curves).reshape(-1, g),
        "validation_curves": np.array(val_curves).reshape(-1, g) if val_curves else None,
        "n_iter": n_iter,
    }


def _minibatches(X, y, sample_weight, order, batch_size, chunk_rows=CHUNK_ROWS):
    """``(start, X_batch, y_batch, w_batch)`` over ``order``, in batches.

    Rows are gathered a chunk of whole batches at a time: a shuffled copy of
    all of ``X`` would double the memory of training (once more per thread).
    """
    step = batch_size * max(1, chunk_rows // batch_size)
    for c in range(0, len(order), step):
        idx = order[c:c + step]
        Xc, yc = X[idx], y[idx]
        wc = None if sample_weight is None else sample_weight[idx]
        for s in range(0, len(idx), batch_size):
            e = min(len(idx), s + batch_size)
            yield c + s, Xc[s:e], yc[s:e], None if wc is None else wc[s:e]


def _combine(w, tw):
    if w is None:
        return tw
    if tw is None:
        return w.astype(DTYPE, copy=False)
    return (w * tw).astype(DTYPE, copy=False)


def _copy_reps(dst, src, which, n_buckets, hidden):
    """dst[rep] = src[rep] for the repetitions in ``which``."""
    if not which.any():
        return
    for d, s, m in zip(dst, src, param_masks(which, n_buckets, hidden)):
        np.copyto(d, s, where=np.broadcast_to(m, d.shape))


def predict_buckets(X, params, n_buckets, hidden, loss):
    """Bucket probabilities (n, R, B) of the repetitions in ``params``.

    Sparse products run on the compiled kernel, parallel over rows (on the
    threads set by :func:`skmach._kernels.numba_threads`).
    """
    Z, _ = forward_fast(X, params, n_buckets, hidden, parallel=True)
    return output_probabilities(Z, loss)
