"""2-universal hashing of label indices into buckets (MACH repetitions).

Each repetition ``r`` uses Dietzfelbinger's multiply-add-shift function
followed by a multiply-shift range reduction:

    g_r(c) = ((a_r * c + b_r) mod 2**64) >> 32        (a 32-bit hash)
    h_r(c) = (g_r(c) * B) >> 32                         (a bucket in [0, B))

with ``a_r`` and ``b_r`` drawn uniformly from the 64-bit integers. For keys
below ``2**32`` the family ``g`` is strongly universal (Dietzfelbinger, 1996):
two distinct labels collide in a repetition with probability at most
``ceil(2**32 / B) / 2**32``, about ``1/B``. The R functions are drawn
independently. Unlike the textbook ``((a*c + b) mod p) mod B``, whose buckets
can be visibly uneven over consecutive keys for unlucky ``a``, the high bits of
``a*c`` form a Weyl sequence over consecutive labels, so each repetition's
buckets are even in practice too.

Label *indices* (positions in ``classes_``) are hashed, never the raw labels,
so string labels and huge integer ids are handled by the label encoding and
the hashed value is always in ``[0, n_classes)``, ``n_classes <= 2**32``.
All arithmetic is unsigned 64-bit and wraps, as intended.

Nothing of size ``n_classes`` is stored: bucket ids are computed on the fly,
for any block of classes, from the ``2 * R`` integers ``a`` and ``b``.

:func:`multiply_add_shift` is the NumPy reference; :func:`mas_bucket` is its
Numba twin (one class, one repetition), inlined by the compiled scoring
kernels of :mod:`skmach._kernels._mach_scoring`, and
:func:`multiply_add_shift_compiled` fills a whole ``(R, m)`` table with it.
"""

import warnings

import numpy as np
from numba import njit

from .._kernels import SERIAL

MAX_CLASSES = 1 << 32
_SHIFT = np.uint64(32)


def multiply_add_shift(classes, a, b, n_buckets):
    """Bucket ids ``((a*c + b) mod 2**64 >> 32) * B >> 32`` (uint64 in, uint64 out).

    ``classes`` broadcasts against ``a`` and ``b``. This is the reference that
    the GPU kernel reproduces.
    """
    h = np.multiply(a, classes, dtype=np.uint64)  # wraps modulo 2**64
    h += b
    h >>= _SHIFT
    h *= np.uint64(n_buckets)
    h >>= _SHIFT
    return h


@njit(inline="always", **SERIAL)
def mas_bucket(c, a, b, n_buckets):
    """Numba twin of :func:`multiply_add_shift` for one class and one repetition.

    All four arguments must be ``np.uint64`` (mixing signed and unsigned
    integers would make Numba compute in float64). Callable from Python and
    from other compiled functions.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.uint64
    >>> got = mas_bucket(u(7), u(2**63 + 5), u(12345), u(1024))
    >>> int(got) == int(multiply_add_shift(u(7), u(2**63 + 5), u(12345), 1024))
    True
    """
    return (((a * c + b) >> np.uint64(32)) * n_buckets) >> np.uint64(32)


@njit(**SERIAL)
def _mas_table(classes, a, b, n_buckets, out):
    for r in range(a.shape[0]):
        for j in range(classes.shape[0]):
            out[r, j] = mas_bucket(np.uint64(classes[j]), a[r], b[r], n_buckets)


def multiply_add_shift_compiled(classes, a, b, n_buckets):
    """Bucket ids of ``classes`` for every repetition, compiled (int32 table).

    Parameters
    ----------
    classes : ndarray of shape (m,), int
        Class indices in ``[0, 2**32)``.
    a, b : ndarray of shape (R,), uint64
    n_buckets : int
        At most ``2**31``.

    Returns
    -------
    ndarray of shape (R, m), int32
        Equal to ``multiply_add_shift(classes, a[:, None], b[:, None], n_buckets)``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([3, 2**64 - 1], dtype=np.uint64)
    >>> b = np.array([2**40, 7], dtype=np.uint64)
    >>> c = np.arange(5)
    >>> bool((multiply_add_shift_compiled(c, a, b, 16)
    ...       == multiply_add_shift(c.astype(np.uint64), a[:, None], b[:, None], 16)).all())
    True
    """
    classes = np.ascontiguousarray(classes, dtype=np.int64)
    if classes.ndim != 1:
        raise ValueError(f"classes must be 1-D; got shape {classes.shape}")
    if classes.size and (classes.min() < 0 or classes.max() >= MAX_CLASSES):
        raise ValueError(f"class indices must be in [0, {MAX_CLASSES})")
    if not 1 <= int(n_buckets) <= 2**31:
        raise ValueError(f"n_buckets must be in [1, 2**31]; got {n_buckets}")
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = np.ascontiguousarray(b, dtype=np.uint64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D of the same length; got {a.shape} and {b.shape}")
    out = np.empty((a.shape[0], classes.shape[0]), dtype=np.int32)
    _mas_table(classes, a, b, np.uint64(n_buckets), out)
    return out


class UniversalHashFamily:
    """R independent 2-universal hash functions from ``[0, n_classes)`` to ``[0, B)``.

    Parameters
    ----------
    n_classes : int
    n_buckets : int
    n_repetitions : int
    random_state : numpy.random.Generator or RandomState
        Source of the coefficients.
    distinct : bool, default=True
        Check that no two classes land in the same bucket in every repetition
        (they could never be told apart; possible only when ``B**R >=
        n_classes``), and redraw when they do, up to ``max_redraws`` draws,
        as long as ``B**R >= n_classes**2 / 2`` gives a collision-free draw a
        fair chance. The best draw is kept and a warning names the number of
        classes left indistinct.
    max_redraws : int, default=20

    Attributes
    ----------
    a, b : ndarray of shape (n_repetitions,), dtype uint64
        Coefficients.
    n_indistinct_ : int
        Number of classes that share all R buckets with another class.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import UniversalHashFamily
    >>> h = UniversalHashFamily(10, 4, 3, np.random.default_rng(0))
    >>> h.buckets().shape
    (3, 10)
    >>> bool(h.buckets().max() < 4)
    True
    """

    def __init__(self, n_classes, n_buckets, n_repetitions, random_state, *,
                 distinct=True, max_redraws=20):
        n_classes, n_buckets, n_repetitions = int(n_classes), int(n_buckets), int(n_repetitions)
        if not 1 <= n_classes <= MAX_CLASSES:
            raise ValueError(f"n_classes must be in [1, {MAX_CLASSES}]; got {n_classes}")
        if n_buckets < 2:
            raise ValueError(f"n_buckets must be >= 2; got {n_buckets}")
        if n_repetitions < 1:
            raise ValueError(f"n_repetitions must be >= 1; got {n_repetitions}")
        self.n_classes = n_classes
        self.n_buckets = n_buckets
        self.n_repetitions = n_repetitions
        rng = random_state
        best = None
        # log of B**R: all classes can get distinct bucket vectors only when
        # B**R >= K, and a random draw has them distinct with a fair chance
        # (about exp(-K**2 / (2 B**R))) only when B**R >= K**2 / 2.
        log_space = n_repetitions * np.log(n_buckets)
        possible = log_space >= np.log(n_classes)
        worth_redrawing = log_space >= 2 * np.log(n_classes) - np.log(2)
        n_draws = max_redraws if (distinct and worth_redrawing) else 1
        for _ in range(n_draws):
            a = rng.integers(0, 2**64, size=n_repetitions, dtype=np.uint64, endpoint=False)
            b = rng.integers(0, 2**64, size=n_repetitions, dtype=np.uint64, endpoint=False)
            self.a, self.b = a, b
            n_bad = self._count_indistinct() if distinct else 0
            if best is None or n_bad < best[0]:
                best = (n_bad, a, b)
            if n_bad == 0:
                break
        self.n_indistinct_, self.a, self.b = best
        if self.n_indistinct_ and possible:  # impossible spaces are the user's choice
            warnings.warn(
                f"{self.n_indistinct_} of {n_classes} classes share their bucket with another "
                f"class in every repetition (after {n_draws} draw(s) of the hash functions); "
                "they get identical scores. Increase n_buckets or n_repetitions.",
                RuntimeWarning,
                stacklevel=3,
            )

    def __call__(self, classes, rep=None):
        """Bucket ids of class indices.

        Parameters
        ----------
        classes : array-like of int
            Class indices in ``[0, n_classes)``.
        rep : int or None
            One repetition (returns shape ``classes.shape``) or all (returns
            ``(n_repetitions,) + classes.shape``).
        """
        c = np.asarray(classes, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= self.n_classes):
            raise ValueError(f"class indices must be in [0, {self.n_classes})")
        c = c.astype(np.uint64)
        if rep is None:
            a = self.a.reshape((-1,) + (1,) * c.ndim)
            b = self.b.reshape((-1,) + (1,) * c.ndim)
        else:
            a, b = self.a[rep], self.b[rep]
        h = multiply_add_shift(c, a, b, self.n_buckets)
        return h.astype(bucket_dtype(self.n_buckets), copy=False)

    def subset(self, start, stop):
        """The hash functions of repetitions ``start:stop`` as a new family."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.a, new.b = self.a[start:stop], self.b[start:stop]
        new.n_repetitions = stop - start
        return new

    def buckets(self, start=0, stop=None):
        """Bucket ids of classes ``start .. stop-1``, shape (n_repetitions, stop - start)."""
        stop = self.n_classes if stop is None else stop
        return self(np.arange(start, stop, dtype=np.int64))

    def _count_indistinct(self, block=1 << 20):
        """Classes whose full bucket vector is shared with another class."""
        K, B = self.n_classes, self.n_buckets
        # Mix the R bucket ids into one 64-bit fingerprint per class (exact
        # when B**R < 2**63, else a hash that only over-counts collisions by
        # a negligible amount); sort and count duplicates. 8 bytes per class.
        fp = np.empty(K, dtype=np.uint64)
        mult = np.uint64(B) if self.n_repetitions * np.log2(B) < 63 else np.uint64(0x9E3779B97F4A7C15)
        with np.errstate(over="ignore"):
            for s in range(0, K, block):
                h = self.buckets(s, min(K, s + block)).astype(np.uint64)
                acc = np.zeros(h.shape[1], dtype=np.uint64)
                for r in range(self.n_repetitions):
                    acc = acc * mult + h[r]
                fp[s:s + h.shape[1]] = acc
        fp.sort()
        dup = fp[1:] == fp[:-1]
        if not dup.any():
            return 0
        in_group = np.zeros(K, dtype=bool)
        in_group[1:] |= dup
        in_group[:-1] |= dup
        return int(in_group.sum())

    def inverted_index(self, rep):
        """Classes of each bucket for repetition ``rep`` (CSR-style).

        Returns
        -------
        indptr : ndarray of shape (n_buckets + 1,)
        classes : ndarray of shape (n_classes,), class indices grouped by bucket.
        """
        h = self.buckets()[rep] if self.n_classes <= (1 << 22) else np.concatenate(
            [self(np.arange(s, min(self.n_classes, s + (1 << 22))), rep)
             for s in range(0, self.n_classes, 1 << 22)]
        )
        order = np.argsort(h, kind="stable").astype(index_dtype(self.n_classes))
        counts = np.bincount(h, minlength=self.n_buckets)
        indptr = np.zeros(self.n_buckets + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, order


class PermutationFamily:
    """R independent random bijections of ``[0, n_classes)`` onto itself.

    Used instead of :class:`UniversalHashFamily` when ``n_buckets >=
    n_classes``: hashing cannot save anything there, and a bijection avoids
    collisions altogether, so every repetition is a plain K-way classifier on
    relabelled classes. Stores ``n_repetitions * n_classes`` small integers.
    Same interface as :class:`UniversalHashFamily`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import PermutationFamily
    >>> h = PermutationFamily(3, 2, np.random.default_rng(0))
    >>> sorted(h.buckets()[0].tolist())
    [0, 1, 2]
    """

    def __init__(self, n_classes, n_repetitions, random_state):
        self.n_classes = self.n_buckets = int(n_classes)
        self.n_repetitions = int(n_repetitions)
        self.n_indistinct_ = 0
        dt = bucket_dtype(self.n_buckets)
        self.table = np.stack(
            [random_state.permutation(self.n_classes).astype(dt) for _ in range(self.n_repetitions)]
        )

    def __call__(self, classes, rep=None):
        c = np.asarray(classes, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= self.n_classes):
            raise ValueError(f"class indices must be in [0, {self.n_classes})")
        return self.table[:, c] if rep is None else self.table[rep, c]

    def subset(self, start, stop):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.table = self.table[start:stop]
        new.n_repetitions = stop - start
        return new

    def buckets(self, start=0, stop=None):
        stop = self.n_classes if stop is None else stop
        return self.table[:, start:stop]

    inverted_index = UniversalHashFamily.inverted_index


def bucket_dtype(n_buckets):
    """Smallest unsigned dtype that holds bucket ids in ``[0, n_buckets)``."""
    return np.uint8 if n_buckets <= 256 else np.uint16 if n_buckets <= 65536 else np.uint32


def index_dtype(n):
    """int32 when ``n`` fits, else int64."""
    return np.int32 if n < 2**31 else np.int64
