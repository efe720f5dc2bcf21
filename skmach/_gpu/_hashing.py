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


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        cupy = import_cupy()
        _KERNEL = cupy.ElementwiseKernel(
            "uint64 c, uint64 a, uint64 b, uint64 n_buckets",
            "uint64 h",
            _UNIVERSAL_OP,
            "skmach_universal_hash",
        )
    return _KERNEL


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
    """NumPy reference of :func:`universal_buckets_gpu` (the CPU hash itself)."""
    xp = array_namespace_of(classes, a, b)
    if xp is not np:
        classes, a, b = (x.get() for x in (classes, a, b))
    c = np.asarray(classes, dtype=np.int64).ravel().astype(np.uint64)
    h = multiply_add_shift(c[None, :], np.asarray(a, np.uint64)[:, None],
                           np.asarray(b, np.uint64)[:, None], n_buckets)
    return h.astype(bucket_dtype(n_buckets), copy=False)
