"""Label hashing on the GPU (twin of :class:`skmach._hashing.UniversalHashFamily`).

``h_r(c) = (((a_r * c + b_r) mod 2**64 >> 32) * B) >> 32`` (multiply-add-shift
then multiply-shift, see :mod:`skmach._hashing._universal`), computed for all
``R`` repetitions and a block of classes in one CuPy ``ElementwiseKernel`` in
unsigned 64-bit arithmetic that wraps exactly as NumPy's, so the bucket ids
are identical. The scoring kernels of :mod:`._scoring` inline the same
function.
"""

import numpy as np

from .._hashing._universal import MAX_CLASSES, bucket_dtype, multiply_add_shift
from ._backend import array_namespace_of, import_cupy

__all__ = ["universal_buckets_gpu", "universal_buckets_reference"]

_KERNEL = None

_UNIVERSAL_OP = """
    h = (((a * c + b) >> 32) * n_buckets) >> 32;
"""


_IN_PARAMS = "uint64 c, uint64 a, uint64 b, uint64 n_buckets"
_OUT_PARAMS = "uint64 h"


def cuda_source():
    """A stand-alone CUDA kernel around the ``ElementwiseKernel`` operation.

    CuPy wraps :data:`_UNIVERSAL_OP` in its own indexing code; the compile
    check (:mod:`._compile`) compiles the operation inside this equivalent
    one-dimensional kernel, with the same parameter types.
    """
    return (
        "typedef unsigned long long uint64;\n"
        'extern "C" __global__ void skmach_universal_hash(\n'
        "    const uint64* c_, const uint64* a_, const uint64* b_, uint64 n_buckets,\n"
        "    uint64* h_, long long m, long long R)\n"
        "{\n"
        "    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < R * m;\n"
        "         t += (long long)gridDim.x * blockDim.x) {\n"
        "        const uint64 c = c_[t % m], a = a_[t / m], b = b_[t / m];\n"
        "        uint64 h;\n"
        + _UNIVERSAL_OP
        + "        h_[t] = h;\n"
        "    }\n"
        "}\n"
    )


def _kernel():
    global _KERNEL
    cupy = import_cupy()
    if _KERNEL is None or _KERNEL[0] is not cupy:
        _KERNEL = (cupy, cupy.ElementwiseKernel(
            _IN_PARAMS, _OUT_PARAMS, _UNIVERSAL_OP, "skmach_universal_hash"))
    return _KERNEL[1]


def universal_buckets_gpu(classes, a, b, n_buckets, *, check=True):
    """Bucket ids of class indices for all repetitions, on the GPU.

    Parameters
    ----------
    classes : array-like of int, shape (m,)
        Class indices in ``[0, 2**32)`` (NumPy or CuPy).
    a, b : array-like of uint64, shape (R,)
        Coefficients (``UniversalHashFamily.a`` / ``.b``).
    n_buckets : int
    check : bool, default=True
        Raise ``ValueError`` for class indices out of range (costs one
        device synchronisation).

    Returns
    -------
    cupy.ndarray of shape (R, m)
        Same values and dtype (:func:`~skmach._hashing._universal.bucket_dtype`)
        as ``UniversalHashFamily(...)(classes)``.
    """
    cupy = import_cupy()
    c = cupy.asarray(classes, dtype=cupy.int64).ravel()
    if check and c.size and (int(c.min()) < 0 or int(c.max()) >= MAX_CLASSES):
        raise ValueError(f"class indices must be in [0, {MAX_CLASSES})")
    c = c.astype(cupy.uint64)
    a = cupy.asarray(a, dtype=cupy.uint64).ravel()
    b = cupy.asarray(b, dtype=cupy.uint64).ravel()
    # Broadcasting (1, m) against (R, 1) gives (R, m).
    h = _kernel()(c[None, :], a[:, None], b[:, None], np.uint64(n_buckets))
    return h.astype(bucket_dtype(n_buckets), copy=False)


def universal_buckets_reference(classes, a, b, n_buckets):
    """NumPy reference of :func:`universal_buckets_gpu` (the CPU hash itself).

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import UniversalHashFamily
    >>> h = UniversalHashFamily(10, 4, 2, np.random.default_rng(0))
    >>> bool((universal_buckets_reference(np.arange(10), h.a, h.b, 4) == h(np.arange(10))).all())
    True
    """
    xp = array_namespace_of(classes, a, b)
    if xp is not np:
        classes, a, b = (x.get() if hasattr(x, "get") else x for x in (classes, a, b))
    c = np.asarray(classes, dtype=np.int64).ravel().astype(np.uint64)
    h = multiply_add_shift(c[None, :], np.asarray(a, np.uint64)[:, None],
                           np.asarray(b, np.uint64)[:, None], n_buckets)
    return h.astype(bucket_dtype(n_buckets), copy=False)


def _ref_elementwise(c, a, b, n_buckets, h):
    """NumPy reference of the ``ElementwiseKernel`` (broadcast inputs, ``h`` out)."""
    c, a, b = np.broadcast_arrays(np.asarray(c), np.asarray(a), np.asarray(b))
    h[...] = multiply_add_shift(c, a, b, int(n_buckets))


#: NumPy reference of each kernel, by name (see :mod:`._standin`).
NUMPY_REFERENCES = {"skmach_universal_hash": _ref_elementwise}
