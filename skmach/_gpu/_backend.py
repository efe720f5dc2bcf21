"""Array-library plumbing: NumPy on the CPU, CuPy on an NVIDIA GPU.

CuPy is optional. Nothing in :mod:`skmach._gpu` imports it at module import
time; every function that needs it imports it lazily, so ``import skmach``
works on machines without CuPy or without a GPU.

Convention: *results follow the input's array library*. A function given
CuPy arrays (or a ``cupyx.scipy.sparse`` matrix) returns CuPy arrays; given
NumPy/SciPy inputs it returns NumPy arrays. :func:`array_namespace_of` tells
which library an input belongs to without importing CuPy when it was never
imported.
"""

import sys

import numpy as np
import scipy.sparse as sp

__all__ = [
    "get_xp",
    "to_device",
    "to_host",
    "array_namespace_of",
    "is_cupy_array",
    "is_cupy_sparse",
    "import_cupy",
]


def import_cupy():
    """Import and return :mod:`cupy`, with a clear error when it is missing.

    Raises
    ------
    ImportError
        If CuPy is not installed.
    """
    try:
        import cupy
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "this operation needs CuPy and an NVIDIA GPU (pip install skmach[gpu])"
        ) from exc
    return cupy


def get_xp(device):
    """Array module for a device.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
        ``"auto"`` is resolved with :func:`skmach._device.resolve_device`.

    Returns
    -------
    module
        :mod:`numpy` for ``"cpu"``, :mod:`cupy` for ``"cuda"``.

    Examples
    --------
    >>> from skmach._gpu import get_xp
    >>> get_xp("cpu").__name__
    'numpy'
    """
    from .._device import resolve_device

    if resolve_device(device) == "cpu":
        return np
    return import_cupy()


def is_cupy_array(X):
    """True when ``X`` is a :class:`cupy.ndarray` (never imports CuPy)."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(X, cupy.ndarray)


def is_cupy_sparse(X):
    """True when ``X`` is a ``cupyx.scipy.sparse`` matrix (never imports CuPy)."""
    if sys.modules.get("cupy") is None:
        return False
    csp = sys.modules.get("cupyx.scipy.sparse")
    return csp is not None and csp.issparse(X)


def array_namespace_of(*arrays):
    """The array library the inputs belong to: :mod:`numpy` or :mod:`cupy`.

    Parameters
    ----------
    *arrays : ndarray, sparse matrix, scalar or None
        ``None`` and Python scalars are ignored.

    Returns
    -------
    module
        :mod:`cupy` when any input is a CuPy array or a ``cupyx`` sparse
        matrix, :mod:`numpy` for NumPy/SciPy inputs, and for inputs of any
        other array API library (``array_api_strict``, ...) its namespace
        from ``array_api_compat`` (as scikit-learn's ``get_namespace``).

    Raises
    ------
    TypeError
        If arrays of different libraries are mixed (an implicit transfer
        would hide a slow path).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from skmach._gpu import array_namespace_of
    >>> array_namespace_of(np.zeros(2), sp.eye(2), None).__name__
    'numpy'
    """
    on_gpu, on_cpu, others = False, False, []
    for a in arrays:
        if a is None or np.isscalar(a) or isinstance(a, (int, float, bool, np.generic)):
            continue
        if is_cupy_array(a) or is_cupy_sparse(a):
            on_gpu = True
        elif isinstance(a, np.ndarray) or sp.issparse(a):
            on_cpu = True
        elif hasattr(a, "__array_namespace__"):
            others.append(a)
    if sum((on_gpu, on_cpu, bool(others))) > 1:
        raise TypeError("inputs mix arrays of different libraries (CuPy, NumPy/SciPy or "
                        "another array API library); move them to one device first")
    if others:
        from sklearn.externals.array_api_compat import array_namespace

        return array_namespace(*others)
    return import_cupy() if on_gpu else np


def to_device(a, device, *, sparse_dtype=np.float32):
    """Copy an array or sparse matrix to ``device`` (no copy when already there).

    Parameters
    ----------
    a : ndarray, scipy.sparse matrix, cupy.ndarray or cupyx sparse matrix
    device : {"cpu", "cuda"}
    sparse_dtype : dtype, default=np.float32
        ``cupyx`` sparse matrices hold float32/64 (or complex) data only:
        SciPy matrices of another dtype (integer counts, bool) are cast to
        this dtype on the way, as the CPU estimators accept them.

    Returns
    -------
    array or sparse matrix
        On the CPU: NumPy / SciPy (CSR stays CSR, CSC stays CSC, other sparse
        formats become CSR). On the GPU: CuPy / ``cupyx.scipy.sparse`` (same
        format rule; cuSPARSE needs int32 indices, so SciPy index arrays are
        cast to int32).
    """
    if device == "cpu":
        return to_host(a)
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    cupy = import_cupy()
    if is_cupy_array(a) or is_cupy_sparse(a):
        return a
    if sp.issparse(a):
        import cupyx.scipy.sparse as csp

        fmt = a.format if a.format in ("csr", "csc") else "csr"
        a = a.asformat(fmt)
        if a.nnz >= 2**31:
            raise ValueError("cupyx sparse matrices hold at most 2**31 - 1 non-zeros")
        # cupyx accepts float32/64 and complex data only; int32 indices.
        data = a.data
        if data.dtype.kind not in "fc":
            data = data.astype(sparse_dtype)
        data = cupy.asarray(data)
        indices = cupy.asarray(a.indices.astype(np.int32, copy=False))
        indptr = cupy.asarray(a.indptr.astype(np.int32, copy=False))
        cls = csp.csr_matrix if fmt == "csr" else csp.csc_matrix
        return cls((data, indices, indptr), shape=a.shape)
    if isinstance(a, np.ndarray) and a.dtype == object:
        raise TypeError("object arrays cannot be moved to the GPU")
    return cupy.asarray(a)


def to_host(a):
    """Copy a CuPy array / ``cupyx`` sparse matrix to NumPy / SciPy.

    NumPy arrays, SciPy matrices, scalars and ``None`` are returned as they
    are; tuples and lists are converted element by element.
    """
    if isinstance(a, (tuple, list)):
        return type(a)(to_host(x) for x in a)
    if is_cupy_array(a) or is_cupy_sparse(a):
        return a.get()
    return a
