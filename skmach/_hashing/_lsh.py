"""Locality-sensitive hashing of neuron weight vectors (LSH-sparse training).

Two hash families map a batch of vectors to ``L`` integer codes, one per hash
table, each code built from ``K`` elementary hashes:

- :class:`SimHash`, signed random projections (Charikar 2002) with *sparse*
  ``{-1, 0, +1}`` projections (a fraction ``density`` of non-zeros, as in
  SLIDE). Each elementary hash is one bit, ``sign(<r, x>)``; two vectors
  collide on a bit with probability about ``1 - angle(x, y) / pi``, so the
  collision probability grows with cosine similarity.
- :class:`DWTAHash`, densified winner-take-all (Yagnik et al. 2011; Chen &
  Shrivastava 2018). Each elementary hash looks at ``bin_size`` randomly chosen
  coordinates and returns the position of the largest *non-zero* one
  (``log2(bin_size)`` bits). Bins where every coordinate is zero (sparse
  inputs) borrow the value of another bin chosen by a fixed probe sequence
  (densification), so sparse vectors still get ``L * K`` hashes. Collision
  probability grows with the overlap of the coordinates' rank orders.

:class:`LSHTables` keeps ``L`` tables over the rows of a weight matrix
(neurons) as one sorted array of ``(table, code)`` keys, which makes a query a
vectorised ``searchsorted`` and makes re-hashing a subset of neurons cheap
(new codes for those rows, then one re-sort of ``L * n_neurons`` integers).

Costs are counted in "multiply-add equivalents" per hashed vector so that the
estimator can report honest training costs: an addition or comparison counts
as one.
"""

import numpy as np
import scipy.sparse as sp

__all__ = ["SimHash", "DWTAHash", "LSHTables", "make_hash_family"]


def _as_dense(X):
    if sp.issparse(X):
        return np.asarray(X.toarray())
    return np.asarray(X)


class SimHash:
    """Signed random projections with sparse ``{-1, 0, +1}`` directions.

    Parameters
    ----------
    n_features : int
        Dimension of the hashed vectors.
    n_bits : int
        Bits per table code (``K``), at most 62.
    n_tables : int
        Number of tables (``L``).
    density : float, default=1/3
        Fraction of non-zero entries of each projection (Achlioptas 2003).
    random_state : numpy.random.Generator

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import SimHash
    >>> h = SimHash(5, n_bits=4, n_tables=3, random_state=np.random.default_rng(0))
    >>> codes = h.hash(np.ones((2, 5)))
    >>> codes.shape, bool((codes[0] == codes[1]).all())
    ((2, 3), True)
    """

    def __init__(self, n_features, n_bits, n_tables, density=1 / 3, random_state=None):
        if not 1 <= n_bits <= 62:
            raise ValueError(f"n_bits must be in [1, 62] for SimHash; got {n_bits}")
        self.n_features = int(n_features)
        self.n_bits = int(n_bits)
        self.n_tables = int(n_tables)
        self.density = float(density)
        rng = np.random.default_rng(random_state)
        n_proj = self.n_bits * self.n_tables
        nz = rng.random((self.n_features, n_proj)) < self.density
        # Guarantee at least one non-zero per projection.
        empty = ~nz.any(axis=0)
        nz[rng.integers(0, self.n_features, empty.sum()), np.flatnonzero(empty)] = True
        signs = np.where(rng.random((self.n_features, n_proj)) < 0.5, -1.0, 1.0)
        self.projections = (nz * signs).astype(np.float32)
        self._nnz_per_feature = nz.sum(axis=1).astype(np.float64)
        self._weights = (1 << np.arange(self.n_bits, dtype=np.int64))
        self.n_codes = 1 << self.n_bits

    def hash(self, X):
        """Codes of the rows of ``X`` (dense or CSR), shape ``(n, n_tables)``."""
        if sp.issparse(X):
            proj = np.asarray(X @ self.projections)
        else:
            proj = np.asarray(X, dtype=np.float32) @ self.projections
        bits = (proj > 0).reshape(len(proj), self.n_tables, self.n_bits)
        return bits.astype(np.int64) @ self._weights

    def cost(self, nnz=None):
        """Additions per hashed vector with ``nnz`` non-zeros (all when None; array ok)."""
        mean_nnz_proj = self._nnz_per_feature.mean()
        n = self.n_features if nnz is None else nnz
        return n * mean_nnz_proj


class DWTAHash:
    """Densified winner-take-all hashing.

    Parameters
    ----------
    n_features : int
    n_bits : int
        Elementary WTA hashes per table code (``K``); the code has
        ``K * log2(bin_size)`` bits.
    n_tables : int
    bin_size : int, default=8
        Coordinates compared by each elementary hash (a power of two).
    random_state : numpy.random.Generator
    max_probes : int, default=32
        Densification attempts for an empty bin before it falls back to 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import DWTAHash
    >>> h = DWTAHash(16, n_bits=2, n_tables=4, bin_size=4,
    ...              random_state=np.random.default_rng(0))
    >>> h.hash(np.arange(32.0).reshape(2, 16)).shape
    (2, 4)
    """

    def __init__(self, n_features, n_bits, n_tables, bin_size=8, random_state=None,
                 max_probes=32):
        if bin_size < 2 or bin_size & (bin_size - 1):
            raise ValueError(f"bin_size must be a power of two >= 2; got {bin_size}")
        bits_per_hash = int(np.log2(bin_size))
        if n_bits * bits_per_hash > 62:
            raise ValueError(
                f"n_bits * log2(bin_size) must be <= 62 for DWTA; got {n_bits} * {bits_per_hash}"
            )
        self.n_features = int(n_features)
        self.n_bits = int(n_bits)
        self.n_tables = int(n_tables)
        self.bin_size = int(bin_size)
        self.max_probes = int(max_probes)
        rng = np.random.default_rng(random_state)
        n_hashes = self.n_bits * self.n_tables
        # Bins of distinct coordinates: consecutive slices of fresh permutations.
        n_perm = -(-n_hashes * self.bin_size // self.n_features)
        coords = np.concatenate([rng.permutation(self.n_features) for _ in range(n_perm)])
        if len(coords) < n_hashes * self.bin_size:  # n_features < bin_size
            coords = rng.integers(0, self.n_features, n_hashes * self.bin_size)
        self.bins = coords[: n_hashes * self.bin_size].reshape(n_hashes, self.bin_size)
        # Probe sequence for densification: bin i borrows from probes[i, t].
        self.probes = rng.integers(0, n_hashes, (n_hashes, self.max_probes))
        self._weights = (self.bin_size ** np.arange(self.n_bits, dtype=np.int64))
        self.n_codes = self.bin_size ** self.n_bits

    def hash(self, X):
        """Codes of the rows of ``X``, shape ``(n, n_tables)``."""
        X = _as_dense(X)
        n = X.shape[0]
        vals = X[:, self.bins]  # (n, n_hashes, bin_size)
        empty = ~(vals != 0).any(axis=2)
        vals = np.where(vals != 0, vals, -np.inf)
        h = np.argmax(vals, axis=2).astype(np.int64)  # (n, n_hashes)
        if empty.any():
            rows, cols = np.nonzero(empty)
            filled = np.zeros(len(rows), dtype=bool)
            for t in range(self.max_probes):
                todo = np.flatnonzero(~filled)
                if len(todo) == 0:
                    break
                src = self.probes[cols[todo], t]
                ok = ~empty[rows[todo], src]
                # Offset by the probe number so that borrowed values differ
                # from the source's own value (as in Chen & Shrivastava).
                h[rows[todo[ok]], cols[todo[ok]]] = (h[rows[todo[ok]], src[ok]] + t + 1) % self.bin_size
                filled[todo[ok]] = True
            h[rows[~filled], cols[~filled]] = 0
        h = h.reshape(n, self.n_tables, self.n_bits)
        return h @ self._weights

    def cost(self, nnz=None):
        """Comparisons per hashed vector with ``nnz`` non-zeros (all when None; array ok)."""
        total = self.bins.size
        if nnz is None:
            return float(total)
        # Only non-zero coordinates are visited (SLIDE's sparse DWTA), plus
        # one densification step per hash.
        return total * np.asarray(nnz) / self.n_features + self.bins.shape[0]


def make_hash_family(name, n_features, n_bits, n_tables, random_state):
    """Build a :class:`SimHash` (``"simhash"``) or :class:`DWTAHash` (``"dwta"``)."""
    if name == "simhash":
        return SimHash(n_features, n_bits, n_tables, random_state=random_state)
    if name == "dwta":
        return DWTAHash(n_features, n_bits, n_tables, random_state=random_state)
    raise ValueError(f"hash_family must be 'simhash' or 'dwta'; got {name!r}")


class LSHTables:
    """``L`` hash tables over the rows (neurons) of a weight matrix.

    Stored as one sorted array of keys ``table * n_codes + code`` with the
    neuron of each key, so all ``n * L`` bucket look-ups of a batch are one
    ``searchsorted``.

    Parameters
    ----------
    family : SimHash or DWTAHash
    bucket_size : int, default=128
        At most this many neurons are returned per bucket (SLIDE caps buckets
        the same way); which ones is random when ``rng`` is given to
        :meth:`query`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach._hashing import LSHTables, SimHash
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(20, 8))
    >>> t = LSHTables(SimHash(8, n_bits=3, n_tables=4, random_state=rng))
    >>> t.build(W)
    >>> rows, neurons = t.query(t.family.hash(W[:1]))
    >>> bool((neurons == 0).sum() == 4)  # a neuron collides with itself in every table
    True
    """

    def __init__(self, family, bucket_size=128):
        self.family = family
        self.bucket_size = int(bucket_size)
        self.codes = None
        self.n_hashed_ = 0  # vectors hashed by build/update (cost accounting)

    def build(self, W):
        """Hash every row of ``W`` and (re)build the tables."""
        self.codes = self.family.hash(W)  # (n_neurons, L)
        self.n_neurons = self.codes.shape[0]
        self.n_hashed_ += self.n_neurons
        self._sort()

    def update(self, rows, W_rows):
        """Re-hash only ``rows`` (whose new weights are ``W_rows``)."""
        rows = np.asarray(rows)
        if len(rows) == 0:
            return
        self.codes[rows] = self.family.hash(W_rows)
        self.n_hashed_ += len(rows)
        self._sort()

    def _sort(self):
        L = self.family.n_tables
        keys = self.codes.T + (np.arange(L, dtype=np.int64) * self.family.n_codes)[:, None]
        keys = keys.ravel()
        order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[order]
        self.sorted_neurons = (order % self.n_neurons).astype(np.int64)
        # Small key spaces (few bits per code): bucket boundaries by direct
        # look-up instead of two binary searches per query.
        n_keys = L * self.family.n_codes
        if n_keys <= max(1 << 20, 4 * len(keys)):
            self._offsets = np.zeros(n_keys + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys, minlength=n_keys), out=self._offsets[1:])
        else:
            self._offsets = None

    def query(self, codes, rng=None):
        """Neurons sharing a bucket with each query, one entry per collision.

        Parameters
        ----------
        codes : ndarray of shape (n, L)
            Codes of the queries (``family.hash(X)``).
        rng : numpy.random.Generator, optional
            When given, over-full buckets return a random window of
            ``bucket_size`` neurons; otherwise always the same one.

        Returns
        -------
        rows, neurons : ndarray of int64
            Query row and neuron of each (query, table) collision; a neuron
            appears once per table it collides in.
        """
        n, L = codes.shape
        qkeys = codes + (np.arange(L, dtype=np.int64) * self.family.n_codes)[None, :]
        qkeys = qkeys.ravel()
        if self._offsets is not None:
            start = self._offsets[qkeys]
            end = self._offsets[qkeys + 1]
        else:
            start = np.searchsorted(self.sorted_keys, qkeys, side="left")
            end = np.searchsorted(self.sorted_keys, qkeys, side="right")
        size = end - start
        over = size > self.bucket_size
        if over.any():
            extra = size[over] - self.bucket_size
            if rng is not None:
                start[over] += (rng.random(len(extra)) * (extra + 1)).astype(np.int64)
            size = np.minimum(size, self.bucket_size)
        total = int(size.sum())
        # position in sorted_neurons = start of the bucket + rank within it
        shift = start - (np.cumsum(size) - size)
        pos = np.arange(total, dtype=np.int64) + np.repeat(shift, size)
        neurons = self.sorted_neurons[pos]
        rows = np.repeat(np.arange(n, dtype=np.int64), size.reshape(n, L).sum(axis=1))
        return rows, neurons
