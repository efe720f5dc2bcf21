"""Label hashing on the GPU (twin of :class:`skmach._hashing.UniversalHashFamily`).

``h_r(c) = ((a_r * c + b_r) mod p) mod B`` with ``p = 2**31 - 1``, computed
for all ``R`` repetitions and a block of classes in one CuPy
``ElementwiseKernel``, in 64-bit integers exactly as the CPU does, so the
bucket ids are identical.

The scoring kernels of :mod:`._scoring` compute the same function inside CUDA
code with a division-free reduction modulo the Mersenne prime
(:func:`mersenne_mod_reference` is its NumPy transcription, tested on the CPU).
"""

import numpy as np

from .._hashing._universal import PRIME, bucket_dtype
from ._backend import array_namespace_of, import_cupy

__all__ = ["universal_buckets_gpu", "universal_buckets_reference", "mersenne_mod_reference"]

_KERNEL = None

# a, b < p and 0 <= c < p, so a * c + b < 2**62: no 64-bit overflow.
_UNIVERSAL_OP = """
    h = ((a * c + b) % 2147483647LL) % n_buckets;
"""


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        cupy = import_cupy()
        _KERNEL = cupy.ElementwiseKernel(
            "int64 c, int64 a, int64 b, int64 n_buckets",
            "int64 h",
            _UNIVERSAL_OP,
            "skmach_universal_hash",
        )
    return _KERNEL


def universal_buckets_gpu(classes, a, b, n_buckets, *, check=True):
    """Bucket ids of class indices for all repetitions, on the GPU.

    Parameters
    ----------
    classes : array-like of int, shape (m,)
        Class indices in ``[0, 2**31 - 1)`` (NumPy or CuPy).
    a, b : array-like of int64, shape (R,)
        Coefficients (``UniversalHashFamily.a`` / ``.b``).
    n_buckets : int
    check : bool, default=True
        Raise ``ValueError`` for negative class indices or indices ``>= p``
        (costs one device synchronisation).

    Returns
    -------
    cupy.ndarray of shape (R, m)
        Same values and dtype (:func:`~skmach._hashing._universal.bucket_dtype`)
        as ``UniversalHashFamily(...)(classes)``.
    """
    cupy = import_cupy()
    c = cupy.asarray(classes, dtype=cupy.int64).ravel()
    a = cupy.asarray(a, dtype=cupy.int64).ravel()
    b = cupy.asarray(b, dtype=cupy.int64).ravel()
    if check and c.size and (int(c.min()) < 0 or int(c.max()) >= PRIME):
        raise ValueError(f"class indices must be in [0, {PRIME})")
    # Broadcasting (1, m) against (R, 1) gives (R, m).
    h = _kernel()(c[None, :], a[:, None], b[:, None], np.int64(n_buckets))
    return h.astype(bucket_dtype(n_buckets), copy=False)


def universal_buckets_reference(classes, a, b, n_buckets):
    """NumPy/CuPy reference of :func:`universal_buckets_gpu` (plain array ops).

    Follows the input's array library.
    """
    xp = array_namespace_of(classes, a, b)
    c = xp.asarray(classes, dtype=xp.int64).ravel()
    h = xp.asarray(a, dtype=xp.int64)[:, None] * c[None, :]
    h += xp.asarray(b, dtype=xp.int64)[:, None]
    h %= PRIME
    h %= n_buckets
    return h.astype(bucket_dtype(n_buckets), copy=False)


def mersenne_mod_reference(x):
    """``x mod (2**31 - 1)`` without division, for ``0 <= x < 2**62``.

    NumPy transcription of the CUDA ``mersenne_mod`` of :mod:`._scoring`:
    with ``x = hi * 2**31 + lo`` and ``2**31 = 1 (mod p)``, ``x = hi + lo
    (mod p)``. Two folds bring ``x`` below ``p + 2``; one conditional
    subtraction finishes.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0, 2**31 - 1, 2**31, 2**62 - 1], dtype=np.uint64)
    >>> bool((mersenne_mod_reference(x) == x % np.uint64(2**31 - 1)).all())
    True
    """
    x = np.asarray(x, dtype=np.uint64)
    p = np.uint64(PRIME)
    x = (x & p) + (x >> np.uint64(31))  # < 2**31 + 2**31 = 2**32
    x = (x & p) + (x >> np.uint64(31))  # <= p + 1
    return np.where(x >= p, x - p, x)
