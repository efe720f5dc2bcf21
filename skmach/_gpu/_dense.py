"""The MACH per-repetition model on the GPU (NumPy or CuPy, following the input).

Array-library-generic twins of the functions of
:mod:`skmach.mach._repetition_model` (``forward``, ``backward``,
``output_probabilities``, ``predict_buckets``, ``loss_and_grad_logits``,
``bucket_targets``) and of the softmax/sigmoid of :mod:`skmach.utils._math`.
Each is a line-by-line transcription with ``np.`` replaced by ``xp.`` (the
input's library) and the three constructs CuPy lacks rewritten:

- ``np.asarray(sparse @ dense)`` / ``np.empty`` in ``matmul_blocks``
  (``np.*`` creation functions cannot dispatch to CuPy),
- ``sp.issparse`` (false for ``cupyx.scipy.sparse`` matrices),
- ufunc ``where=`` arguments (``sigmoid``; CuPy ufuncs do not take them).

With NumPy inputs every function returns bit-identical results to the CPU
module (tested on the CPU), so the CPU module could be replaced by these.
Dense products go through cuBLAS; ``cupyx.scipy.sparse`` CSR @ dense through
cuSPARSE (SpMM). Weights are float32 (``DTYPE``).
"""

import numpy as np
import scipy.sparse as sp

from ..mach._repetition_model import DTYPE
from ._backend import array_namespace_of, is_cupy_sparse

__all__ = [
    "matmul_blocks",
    "forward",
    "backward",
    "output_probabilities",
    "predict_buckets",
    "loss_and_grad_logits",
    "bucket_targets",
    "softmax",
    "log_softmax",
    "sigmoid",
    "log_sigmoid",
]


def _issparse(X):
    return sp.issparse(X) or is_cupy_sparse(X)


def matmul_blocks(X, W, width):
    """``X @ W``, ``width`` columns at a time for dense ``X`` (see the CPU version).

    Sparse ``X`` (SciPy or cupyx): one product, returned dense in the
    library of ``W``.
    """
    xp = array_namespace_of(X, W)
    if _issparse(X) or _issparse(W):
        return xp.asarray(X @ W)
    out = xp.empty((X.shape[0], W.shape[1]), dtype=xp.result_type(X, W))
    for s in range(0, W.shape[1], width):
        out[:, s:s + width] = X @ xp.ascontiguousarray(W[:, s:s + width])
    return out


def forward(X, params, n_buckets, hidden):
    """Logits of shape (n, g, B), and the hidden activations (or None)."""
    xp = array_namespace_of(X, *params)
    n = X.shape[0]
    if hidden == 0:
        W, b = params
        Z = matmul_blocks(X, W, n_buckets)
        Z += b
        return Z.reshape(n, -1, n_buckets), None
    W1, b1, W2, b2 = params
    A = matmul_blocks(X, W1, hidden)
    A += b1
    xp.maximum(A, 0, out=A)
    g = W2.shape[0]
    Ag = A.reshape(n, g, hidden).transpose(1, 0, 2)  # (g, n, H)
    Z = xp.matmul(Ag, W2)  # (g, n, B), batched GEMM
    Z += b2[:, None, :]
    return Z.transpose(1, 0, 2), A


def backward(X, params, A, dZ, n_buckets, hidden, alpha_scaled, rows=None):
    """Gradients for the parameters given ``dZ`` (n, g, B) (see the CPU version)."""
    xp = array_namespace_of(X, dZ, *params)
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
    dZg = xp.ascontiguousarray(dZ.transpose(1, 0, 2))  # (g, n, B)
    Ag = A.reshape(n, g, hidden).transpose(1, 0, 2)  # (g, n, H)
    gW2 = xp.matmul(Ag.transpose(0, 2, 1), dZg)  # (g, H, B)
    gb2 = dZg.sum(axis=1)
    dA = xp.matmul(dZg, W2.transpose(0, 2, 1))  # (g, n, H)
    dA = dA.transpose(1, 0, 2).reshape(n, g * hidden)
    dA *= A > 0
    gW1 = matmul_blocks(X.T, dA, hidden)
    if alpha_scaled:
        gW1 += alpha_scaled * Wr
        gW2 += alpha_scaled * W2
    return [gW1, dA.sum(axis=0), gW2, gb2]


def output_probabilities(Z, loss):
    """Bucket probabilities from logits (n, g, B)."""
    return softmax(Z, axis=-1) if loss == "softmax" else sigmoid(Z)


def predict_buckets(X, params, n_buckets, hidden, loss):
    """Bucket probabilities (n, R, B), in the library of ``X`` and ``params``.

    For the GPU: ``X`` a CuPy array or ``cupyx.scipy.sparse`` CSR matrix
    (float32), ``params`` the model's ``coefs_`` uploaded with
    :func:`skmach._gpu.to_device`.
    """
    Z, _ = forward(X, params, n_buckets, hidden)
    return output_probabilities(Z, loss)


def bucket_targets(y, buckets_of, n, g, n_buckets, loss):
    """Targets (n, g, B) and sample weights; see the CPU version.

    ``y``: int array (multi-class) or CSR indicator (SciPy or cupyx), in the
    library the targets should be built in; ``buckets_of`` must return bucket
    ids in that library (e.g. :func:`skmach._gpu.universal_buckets_gpu`).
    """
    xp = array_namespace_of(y)
    B = n_buckets
    T = xp.zeros((n, g, B), DTYPE)
    rep = xp.arange(g)[:, None]
    if not _issparse(y):
        Hy = buckets_of(y).astype(xp.int64)  # (g, n)
        T[xp.arange(n)[None, :], rep, Hy] = 1.0
        return T, None
    # row of each stored label: np.repeat(arange(n), diff(indptr)), written
    # with searchsorted because cupy.repeat takes no array of counts.
    rows = xp.searchsorted(xp.asarray(y.indptr), xp.arange(y.indices.size), side="right") - 1
    Hy = buckets_of(y.indices).astype(xp.int64)  # (g, nnz)
    T[xp.broadcast_to(rows, Hy.shape), xp.broadcast_to(rep, Hy.shape), Hy] = 1.0
    if loss == "sigmoid":
        return T, None
    counts = T.sum(axis=2, keepdims=True)
    has = counts[:, 0, 0] > 0
    T = xp.where(counts > 0, T / xp.where(counts > 0, counts, 1), T)
    return T, has.astype(DTYPE)


def loss_and_grad_logits(Z, T, loss, weights):
    """Per-repetition mean loss (g,) and dL/dZ (n, g, B); see the CPU version."""
    xp = array_namespace_of(Z, T, weights)
    n = Z.shape[0]
    w = xp.ones(n, DTYPE) if weights is None else weights
    wsum = float(w.sum())
    if wsum <= 0:
        return xp.zeros(Z.shape[1]), xp.zeros_like(Z)
    if loss == "softmax":
        logP = log_softmax(Z, axis=-1)
        per = -(T * logP).sum(axis=2)  # (n, g)
        dZ = xp.exp(logP)
        dZ -= T
        dZ *= T.sum(axis=2, keepdims=True) > 0
    else:
        per = -(T * log_sigmoid(Z) + (1 - T) * log_sigmoid(-Z)).sum(axis=2)
        dZ = sigmoid(Z)
        dZ -= T
    scale = (w / wsum).astype(DTYPE)
    dZ *= scale[:, None, None]
    return (per * scale[:, None]).sum(axis=0), dZ


# --------------------------------------------------------------------------
# softmax / sigmoid (skmach.utils._math, generic)
# --------------------------------------------------------------------------

def softmax(z, axis=-1):
    """Softmax along ``axis``; same operations as :func:`skmach.utils.softmax`."""
    xp = array_namespace_of(z)
    m = xp.max(z, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    e = xp.subtract(z, m)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def log_softmax(z, axis=-1):
    """Log of :func:`softmax`, without overflow or ``log(0)``."""
    xp = array_namespace_of(z)
    m = xp.max(z, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = z - m
    return s - xp.log(xp.exp(s).sum(axis=axis, keepdims=True))


def sigmoid(z):
    """Logistic function, exact for large ``|z|`` (no ufunc ``where=``)."""
    xp = array_namespace_of(z)
    e = xp.exp(-xp.abs(z))
    d = 1.0 + e
    out = xp.where(z >= 0, 1.0 / d, e / d)
    return out.astype(xp.result_type(z.dtype, xp.float32), copy=False)


def log_sigmoid(z):
    """``log(sigmoid(z))`` without overflow."""
    xp = array_namespace_of(z)
    return -xp.logaddexp(0, -z)
