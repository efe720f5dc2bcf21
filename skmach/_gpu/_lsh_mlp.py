"""What ``LSHSparseMLPClassifier`` calls for ``device="cuda"`` (prediction).

How the CPU predicts (:meth:`skmach.neural_network._base.SparseNetwork.forward`
with ``train=False``): every layer is a ReLU layer ``relu(A @ W.T + b)``
except the output (logits). A *dense* layer computes all its neurons. An
*LSH* layer (``lsh_layers_``) computes only each sample's retrieved active
set (hash the layer input, query the layer's tables, select at most
``budget`` neurons -- most collisions first, padded) when it is a hidden
layer, or the output layer with ``output_scoring="lsh"``; the other neurons
are absent (a hidden neuron outputs 0, an output scores ``-inf``). The
output layer with ``output_scoring="full"`` computes every neuron even when
it has tables.

On the device (:func:`lsh_mlp_scores`) each layer is one matrix product
over all its neurons, ``A @ W.T + b`` (CuPy / cuBLAS, or ``cupyx`` sparse
for a sparse input), then masked to the active sets of the LSH layers that
the CPU computes sparsely. The active sets are the CPU's own: its retrieval
(:meth:`SparseNetwork._select`, the compiled hashing, tables and selection)
runs on a host copy of the layer's input, in the form the CPU gives it
(dense, or ragged over the previous layer's active neurons), so the
selected neurons are the CPU's. The logits therefore equal the CPU's to
float32 rounding (the summation order of the matrix product differs);
``-inf`` where the CPU leaves an output out. A fully dense network never
leaves the device.

:func:`lsh_mlp_predict_proba` and :func:`lsh_mlp_topk` return the host
results of ``predict_proba`` and ``predict_topk`` (class indices; the
estimator maps them through ``classes_``).
"""

import numpy as np

from ..utils._topk import check_k
from ._backend import import_cupy, is_cupy_array, is_cupy_sparse, to_device, to_host

__all__ = ["lsh_mlp_params_to_device", "lsh_mlp_scores", "lsh_mlp_host_scores",
           "lsh_mlp_predict_proba", "lsh_mlp_topk", "LSHMLPDeviceCache"]


def lsh_mlp_params_to_device(net):
    """Each layer's ``(W.T, b)`` on the GPU, float32: ``W.T`` is ``(n_in, n_out)``.

    Parameters
    ----------
    net : skmach.neural_network._base.SparseNetwork
        The fitted network (``estimator._net``).

    Returns
    -------
    list of (cupy.ndarray, cupy.ndarray)
    """
    cupy = import_cupy()
    out = []
    for layer in net.layers:
        WT = np.ascontiguousarray(layer.W.T, dtype=np.float32)
        out.append((cupy.asarray(WT), cupy.asarray(np.asarray(layer.b, dtype=np.float32))))
    return out


def _dense(A):
    return A.toarray() if hasattr(A, "toarray") else A


def _input_activation(X, lsh):
    """The CPU's first activation (dense, or ragged from CSR) from host X."""
    from ..neural_network._base import as_activation

    return as_activation(X, ragged_if_sparse=lsh)


def lsh_mlp_scores(net, X, params=None, *, output_lsh=False):
    """Output logits ``(n, n_out)`` float32 on the GPU, as the CPU's.

    Parameters
    ----------
    net : skmach.neural_network._base.SparseNetwork
        The fitted network (``estimator._net``): layer flags, budgets and,
        for LSH layers, the hash tables of the CPU's retrieval.
    X : cupy.ndarray, cupyx sparse matrix, ndarray or SciPy sparse matrix
        ``(n, n_features)``; uploaded when on the host.
    params : list of (cupy.ndarray, cupy.ndarray), optional
        :func:`lsh_mlp_params_to_device` of ``net`` (uploaded here when
        None; pass it to upload the weights once per model).
    output_lsh : bool, default=False
        ``output_scoring == "lsh"``: the output layer, when it has tables,
        scores only the retrieved outputs (``-inf`` elsewhere).

    Returns
    -------
    Z : cupy.ndarray of shape (n, n_out), float32

    Raises
    ------
    ValueError
        If ``X`` does not have the network's number of input features.
    """
    cupy = import_cupy()
    if params is None:
        params = lsh_mlp_params_to_device(net)
    if len(params) != len(net.layers):
        raise ValueError(f"params has {len(params)} layers; the network has {len(net.layers)}")
    if X.ndim != 2 or X.shape[1] != net.layers[0].n_in:
        raise ValueError(f"X must have shape (n_samples, {net.layers[0].n_in}); got {X.shape}")
    host_X = None if (is_cupy_array(X) or is_cupy_sparse(X)) else X
    A = to_device(X, "cuda")
    if is_cupy_sparse(A):
        A = A.tocsr()
        if A.dtype != np.float32:
            A = A.astype(cupy.float32)
    elif A.dtype != cupy.float32:
        A = A.astype(cupy.float32)
    n = A.shape[0]
    last = len(net.layers) - 1
    act = None  # the CPU's activation of the current layer input, when needed
    Z = None
    for i, (layer, (WT, b)) in enumerate(zip(net.layers, params)):
        sparse_here = layer.lsh and (i < last or output_lsh)
        if sparse_here and act is None:  # the CPU's form of this layer's input
            if i == 0:
                act = _input_activation(to_host(A) if host_X is None else host_X, layer.lsh)
            else:
                act = ("dense", np.ascontiguousarray(to_host(A), dtype=np.float32))
        Z = cupy.asarray(_dense(A @ WT)) + b
        if sparse_here:
            s, e, ind = net._select(layer, act, False, None, None)[:3]
            counts = (e - s).astype(np.int64)
            rows = np.repeat(np.arange(n, dtype=np.int64), counts)
            pos = (np.arange(counts.sum(), dtype=np.int64)
                   - np.repeat(np.cumsum(counts) - counts, counts))
            cols = ind[np.repeat(s, counts) + pos]
            mask = cupy.zeros((n, layer.n_out), dtype=bool)
            mask[cupy.asarray(rows), cupy.asarray(cols)] = True
            if i == last:  # a sample that retrieves no output: scored in full, as the CPU
                empty = np.flatnonzero(counts == 0)
                if len(empty):
                    mask[cupy.asarray(empty)] = True
            fill = cupy.float32(-np.inf) if i == last else cupy.float32(0)
            Z = cupy.where(mask, Z, fill)
            if i < last:
                # the next layer's input as the CPU sees it: ragged over the
                # active neurons (relu of their pre-activations)
                z = to_host(Z)[rows, cols]
                start = np.cumsum(counts) - counts
                act = ("ragged", start, start + counts, cols.astype(np.int64),
                       np.maximum(z, 0).astype(np.float32))
        elif i < last:
            act = None
        if i < last:
            A = cupy.maximum(Z, cupy.float32(0))
    return Z


def lsh_mlp_host_scores(net, X, params=None, *, output_lsh=False, chunk=None):
    """:func:`lsh_mlp_scores` a block of rows at a time, as a NumPy float64 array.

    What ``LSHSparseMLPClassifier._scores`` returns on the CPU (``-inf`` for
    outputs left out), computed on the GPU.

    Parameters
    ----------
    net, X, params, output_lsh
        As :func:`lsh_mlp_scores`.
    chunk : int, optional
        Rows per block; by default the CPU's
        ``min(4096, 2**22 // n_outputs)``.

    Returns
    -------
    scores : ndarray of shape (n, n_out), float64
    """
    if params is None:
        params = lsh_mlp_params_to_device(net)
    n, n_out = X.shape[0], net.layers[-1].n_out
    if chunk is None:
        chunk = max(1, min(n, 4096, (1 << 22) // max(n_out, 1)))
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive integer; got {chunk}")
    res = np.empty((n, n_out), dtype=np.float64)
    for s in range(0, n, chunk):
        res[s:s + chunk] = to_host(lsh_mlp_scores(net, X[s:s + chunk], params,
                                                  output_lsh=output_lsh))
    return res


class LSHMLPDeviceCache:
    """The network's weights on the GPU, uploaded again only after training.

    Keyed by the network object and its Adam step count, so ``partial_fit``
    (which changes the weights) invalidates it.

    Examples
    --------
    >>> cache = LSHMLPDeviceCache()
    >>> cache.params  # nothing uploaded yet
    """

    def __init__(self):
        self.key, self.params = None, None

    def get(self, net):
        """:func:`lsh_mlp_params_to_device` of ``net``, cached."""
        key = (id(net), getattr(net, "t", None), getattr(net, "n_batches", None))
        if self.key != key or self.params is None:
            self.params, self.key = lsh_mlp_params_to_device(net), key
        return self.params


def _softmax64(xp, Z):
    Z = Z.astype(xp.float64)
    m = xp.max(Z, axis=1, keepdims=True)
    E = xp.exp(Z - m)
    return E / xp.sum(E, axis=1, keepdims=True)


def lsh_mlp_predict_proba(net, X, params=None, *, output_lsh=False):
    """``predict_proba`` on the GPU: softmax of :func:`lsh_mlp_scores`, float64, NumPy.

    Parameters
    ----------
    net, X, params, output_lsh
        As :func:`lsh_mlp_scores`.

    Returns
    -------
    proba : ndarray of shape (n, n_out), float64
    """
    cupy = import_cupy()
    return to_host(_softmax64(cupy, lsh_mlp_scores(net, X, params, output_lsh=output_lsh)))


def lsh_mlp_topk(net, X, k, params=None, *, output_lsh=False):
    """``predict_topk`` on the GPU: the ``k`` most probable outputs, best first.

    Outputs are ranked on the logits, as the CPU (probabilities that
    underflow to 0 would tie), ties to the lower index as
    :func:`skmach.utils.topk` (a stable sort); the probabilities (float64)
    are returned.

    Parameters
    ----------
    net, X, params, output_lsh
        As :func:`lsh_mlp_scores`.
    k : int
        ``1 <= k <= n_outputs``.

    Returns
    -------
    indices : ndarray of shape (n, k), int64
        Output indices (``classes_[indices]`` are the labels).
    proba : ndarray of shape (n, k), float64

    Raises
    ------
    TypeError
        If ``k`` is not an integer.
    ValueError
        If ``k`` is out of range.
    """
    cupy = import_cupy()
    n_out = net.layers[-1].n_out
    k = check_k(k, n_out)
    Z = lsh_mlp_scores(net, X, params, output_lsh=output_lsh)
    # CuPy's argsort is stable (thrust stable sort): ties (excluded outputs,
    # -inf) go to the lower index
    idx = cupy.argsort(-Z, axis=1)[:, :int(k)]
    P = _softmax64(cupy, Z)
    return to_host(idx), to_host(cupy.take_along_axis(P, idx, axis=1))
