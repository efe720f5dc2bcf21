"""What ``MACHClassifier`` calls for ``device="cuda"`` (prediction).

Two steps of :meth:`MACHClassifier.predict_topk` run on the device:

- :func:`mach_bucket_proba` -- the per-repetition forward pass
  (``X @ W + b``, optional ReLU hidden layer, softmax or sigmoid), written
  once for the input's array namespace: CuPy arrays / ``cupyx`` sparse on
  the GPU, NumPy / SciPy on the CPU (where it equals
  :func:`skmach.mach._repetition_model.predict_buckets` to float32 rounding);
- :func:`mach_topk` -- fused bucket scoring and top-k
  (:func:`~skmach._gpu.topk_classes_gpu`, or
  :func:`~skmach._gpu.topk_candidates_gpu` with candidates), returning
  NumPy arrays.

``device="auto"`` stays on the CPU until a device run of
``benchmarks/gpu_check.sh`` has passed; ``device="cuda"`` without CuPy or a
GPU raises a clear ``ValueError`` (:func:`skmach._device.resolve_device`).
"""

import numpy as np

from ._backend import array_namespace_of, is_cupy_array, is_cupy_sparse, to_device, to_host
from ._scoring import hash_arguments, topk_candidates_gpu, topk_classes_gpu

__all__ = ["params_to_device", "mach_bucket_proba", "mach_topk"]


def params_to_device(params, device="cuda"):
    """Copy the per-repetition parameters (a tuple of arrays) to ``device``, as float32."""
    return tuple(to_device(np.asarray(p, dtype=np.float32), device) for p in params)


def _softmax(xp, Z):
    Z = Z - xp.max(Z, axis=-1, keepdims=True)
    E = xp.exp(Z)
    return E / xp.sum(E, axis=-1, keepdims=True)


def mach_bucket_proba(X, params, n_buckets, hidden, loss):
    """Bucket probabilities ``(n, R, B)`` float32, in ``X``'s array namespace.

    Parameters
    ----------
    X : cupy.ndarray, cupyx sparse matrix, ndarray or SciPy sparse matrix
        ``(n, n_features)``; the parameters must be in the same namespace
        (see :func:`params_to_device`).
    params : tuple of arrays
        ``(W, b)`` with ``W`` ``(d, R*B)``, or ``(W1, b1, W2, b2)`` with a
        hidden layer of ``hidden`` units per repetition (``W2`` ``(R, H, B)``).
    n_buckets, hidden : int
    loss : {"softmax", "sigmoid"}

    Returns
    -------
    P : array of shape (n, R, B), float32

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.zeros((3, 4), np.float32), np.zeros(4, np.float32)
    >>> mach_bucket_proba(np.ones((1, 3), np.float32), (W, b), 2, 0, "softmax").tolist()
    [[[0.5, 0.5], [0.5, 0.5]]]
    """
    if loss not in ("softmax", "sigmoid"):
        raise ValueError(f"loss must be 'softmax' or 'sigmoid'; got {loss!r}")
    sparse = is_cupy_sparse(X) or (not is_cupy_array(X) and hasattr(X, "tocsr"))
    xp = array_namespace_of(X.data if sparse else X, *params)
    n = X.shape[0]

    def dense(a):
        return a.toarray() if hasattr(a, "toarray") else a

    X = _astype(xp, X, xp.float32) if X.dtype != xp.float32 else X
    if hidden == 0:
        W, b = params
        Z = xp.asarray(dense(X @ W)) + b
        Z = xp.reshape(Z, (n, -1, n_buckets))
    else:
        W1, b1, W2, b2 = params
        A = xp.asarray(dense(X @ W1)) + b1
        A = xp.maximum(A, xp.zeros_like(A))
        g = W2.shape[0]
        Ag = _permute_dims(xp, xp.reshape(A, (n, g, hidden)), (1, 0, 2))
        Z = _permute_dims(xp, xp.matmul(Ag, W2) + b2[:, None, :], (1, 0, 2))
    if loss == "softmax":
        P = _softmax(xp, Z)
    else:
        P = 1 / (1 + xp.exp(-Z))
    return _astype(xp, P, xp.float32)


def _astype(xp, a, dtype):
    # the array API's xp.astype (NumPy 2, array_api_strict); CuPy: the method
    # (cupyx sparse matrices have the method only)
    if hasattr(a, "astype"):
        return a.astype(dtype)
    return xp.astype(a, dtype)


def _permute_dims(xp, a, axes):
    f = getattr(xp, "permute_dims", None) or xp.transpose
    return f(a, axes)


def mach_topk(P, hash_family, n_classes, k, aggregation, *, candidates=None, hash_args=None):
    """Top-k classes on the device from bucket probabilities; NumPy results.

    Parameters
    ----------
    P : cupy.ndarray or ndarray of shape (n, R, B)
        Uploaded when given as NumPy.
    hash_family : UniversalHashFamily or PermutationFamily
        The fitted ``hash_family_`` (ignored when ``hash_args`` is given).
    n_classes, k : int
    aggregation : {"mean", "logmean", "min"}
    candidates : (indptr, classes), optional
        From :func:`skmach.mach._scoring.candidate_classes` (sublinear
        inference).
    hash_args : dict, optional
        :func:`~skmach._gpu.hash_arguments` of ``hash_family``, to upload it
        once per prediction instead of once per chunk.

    Returns
    -------
    indices : ndarray (n, k) of int64
    scores : ndarray (n, k) of float32
        As :func:`skmach.mach._scoring.topk_classes` (``"logmean"`` ranks on
        the mean log; its scores agree to float32 ``exp`` rounding).
    """
    h = hash_args if hash_args is not None else hash_arguments(hash_family)
    P = to_device(P, "cuda")
    if candidates is not None:
        idx, val = topk_candidates_gpu(P, candidates, k, aggregation, hash_args=h)
    else:
        idx, val = topk_classes_gpu(P, n_classes=n_classes, k=k, aggregation=aggregation,
                                    hash_args=h)
    return to_host(idx), to_host(val)
