"""LSH on the GPU: SimHash / DWTA codes, hash tables, retrieval, active sets.

Twins of :mod:`skmach._hashing._lsh` (:class:`~skmach._hashing.SimHash`,
:class:`~skmach._hashing.DWTAHash`, :class:`~skmach._hashing.LSHTables`) and
of :func:`skmach.neural_network._sparse_layers.select_active`, written
against their API of this writing (``family.hash(X) -> (n, L)`` int64 codes;
``tables.build(W)``, ``tables.update(rows, W_rows)``,
``tables.query(codes, rng) -> (rows, neurons)``).

The GPU classes wrap a fitted CPU object: the random projections, bins and
probe sequences are the CPU's, uploaded once, so codes, tables and query
results are the CPU's (exactly for DWTA and tables; for SimHash up to the sign
of projections that are zero to rounding, where cuBLAS and the CPU BLAS may
sum in a different order). Randomised steps (over-full buckets, training-time
tie-breaks and padding) draw from a CuPy generator and are equal to the CPU
only in distribution; the deterministic prediction path (``rng=None``) is
exact.
"""

import numpy as np

from .._hashing._lsh import DWTAHash, SimHash
from ._backend import import_cupy, is_cupy_sparse, to_device

__all__ = ["GPUHashFamily", "GPULSHTables", "select_active_gpu"]

# Must equal skmach.neural_network._sparse_layers._FORCED (checked by a test).
_FORCED = float(1 << 20)

_DWTA_SOURCE = r"""
// One thread per (row i, elementary hash j) of a dense row-major X (n, d).
// WTA: position (0 .. bin_size-1) of the largest *non-zero* coordinate of
// the bin, the first one on ties (np.argmax); empty[i, j] = no non-zero.
extern "C" __global__ void dwta_wta(
    const T* X, long long n, long long d, const long long* bins, int n_hashes, int bin_size,
    long long* h, unsigned char* empty)
{
    const long long total = n * n_hashes;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const long long i = t / n_hashes, j = t % n_hashes;
        const T* x = X + i * d;
        const long long* bin = bins + j * bin_size;
        int arg = 0, found = 0;
        T best = 0;
        for (int q = 0; q < bin_size; ++q) {
            const T v = x[bin[q]];
            if (v != (T)0 && (!found || v > best)) { best = v; arg = q; found = 1; }
        }
        h[t] = arg;
        empty[t] = found ? 0 : 1;
    }
}

// Densification: an empty bin j takes (h0[src] + p + 1) % bin_size from the
// first non-empty bin src = probes[j, p], p = 0 .. max_probes-1; else 0.
// Sources are non-empty, so their h0 is final: the order of threads is free.
extern "C" __global__ void dwta_densify(
    const long long* h0, const unsigned char* empty, long long n, int n_hashes,
    const long long* probes, int max_probes, int bin_size, long long* h)
{
    const long long total = n * n_hashes;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        if (!empty[t]) { h[t] = h0[t]; continue; }
        const long long i = t / n_hashes, j = t % n_hashes;
        long long v = 0;
        for (int p = 0; p < max_probes; ++p) {
            const long long src = i * n_hashes + probes[j * max_probes + p];
            if (!empty[src]) { v = (h0[src] + p + 1) % bin_size; break; }
        }
        h[t] = v;
    }
}
"""

_DWTA_MODULES = {}


def _dwta_module(dtype):
    key = np.dtype(dtype).name
    mod = _DWTA_MODULES.get(key)
    if mod is None:
        cupy = import_cupy()
        ctype = {"float32": "float", "float64": "double"}[key]
        mod = cupy.RawModule(code=f"typedef {ctype} T;\n" + _DWTA_SOURCE)
        _DWTA_MODULES[key] = mod
    return mod


def _grid(total, block=256):
    return (int(max(1, min(-(-total // block), 2**31 - 1))),), (block,)


class GPUHashFamily:
    """A fitted :class:`SimHash` or :class:`DWTAHash`, hashing on the GPU.

    Parameters
    ----------
    family : SimHash or DWTAHash
        The CPU family; its random parameters are uploaded once.
    working_memory_mb : int, default=256
        DWTA densifies sparse inputs this many MB of rows at a time.

    Attributes
    ----------
    n_tables, n_bits, n_codes, n_features : int
        As the CPU family.
    """

    def __init__(self, family, working_memory_mb=256):
        cupy = import_cupy()
        self.family = family
        self.n_tables, self.n_bits = family.n_tables, family.n_bits
        self.n_codes, self.n_features = family.n_codes, family.n_features
        self.working_memory_mb = working_memory_mb
        self._weights = cupy.asarray(family._weights, dtype=cupy.int64)
        if isinstance(family, SimHash):
            self.kind = "simhash"
            self.projections = cupy.asarray(family.projections)
        elif isinstance(family, DWTAHash):
            self.kind = "dwta"
            self.bins = cupy.ascontiguousarray(cupy.asarray(family.bins, dtype=cupy.int64))
            self.probes = cupy.ascontiguousarray(cupy.asarray(family.probes, dtype=cupy.int64))
        else:
            raise TypeError(f"unsupported hash family {type(family).__name__}")

    def hash(self, X):
        """Codes of the rows of ``X``, shape ``(n, n_tables)``, cupy int64.

        ``X``: CuPy array, ``cupyx.scipy.sparse`` matrix, or NumPy/SciPy
        (uploaded).
        """
        cupy = import_cupy()
        X = to_device(X, "cuda")
        if self.kind == "simhash":
            return self._simhash(X)
        if not is_cupy_sparse(X):
            return self._dwta(cupy.ascontiguousarray(X))
        # Sparse input: densify a block of rows at a time (the CPU densifies all).
        n, d = X.shape
        step = max(1, int(self.working_memory_mb * 2**20 // (max(1, d) * X.dtype.itemsize)))
        X = X.tocsr()
        parts = [self._dwta(X[s:min(n, s + step)].toarray()) for s in range(0, n, step)]
        return cupy.concatenate(parts) if parts else cupy.empty((0, self.n_tables), cupy.int64)

    def _codes(self, h):
        """Combine elementary hashes (n, L*K) into one int64 code per table."""
        n = h.shape[0]
        h = h.reshape(n, self.n_tables, self.n_bits)
        return (h * self._weights).sum(axis=2)  # exact integer arithmetic

    def _simhash(self, X):
        cupy = import_cupy()
        if is_cupy_sparse(X):
            # As on the CPU: sparse @ float32 projections in the promoted dtype.
            dt = np.promote_types(X.dtype, np.float32)
            proj = X.astype(dt) @ self.projections.astype(dt)
        else:
            proj = cupy.asarray(X, dtype=cupy.float32) @ self.projections
        return self._codes((proj > 0).astype(cupy.int64))

    def _dwta(self, X):
        cupy = import_cupy()
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(cupy.float64)
        X = cupy.ascontiguousarray(X)
        n, d = X.shape
        n_hashes, bin_size = self.bins.shape
        max_probes = self.probes.shape[1]
        h0 = cupy.empty((n, n_hashes), dtype=cupy.int64)
        empty = cupy.empty((n, n_hashes), dtype=cupy.uint8)
        h = cupy.empty_like(h0)
        if n:
            mod = _dwta_module(X.dtype)
            grid, block = _grid(n * n_hashes)
            mod.get_function("dwta_wta")(grid, block, (
                X, np.int64(n), np.int64(d), self.bins, np.int32(n_hashes), np.int32(bin_size),
                h0, empty))
            mod.get_function("dwta_densify")(grid, block, (
                h0, empty, np.int64(n), np.int32(n_hashes), self.probes, np.int32(max_probes),
                np.int32(bin_size), h))
        return self._codes(h)


class GPULSHTables:
    """``L`` hash tables over neurons, on the GPU (twin of :class:`LSHTables`).

    Parameters
    ----------
    family : GPUHashFamily, SimHash or DWTAHash
    bucket_size : int, default=128

    Attributes
    ----------
    codes : cupy.ndarray (n_neurons, L), int64
    sorted_keys, sorted_neurons : cupy.ndarray (L * n_neurons,), int64
        Keys ``table * n_codes + code`` in ascending order (stable, so the
        neurons of a bucket are in increasing order, as on the CPU).
    """

    def __init__(self, family, bucket_size=128):
        self.family = family if isinstance(family, GPUHashFamily) else GPUHashFamily(family)
        self.bucket_size = int(bucket_size)
        self.codes = None
        self.n_hashed_ = 0

    def build(self, W):
        """Hash every row of ``W`` (NumPy or CuPy) and (re)build the tables."""
        self.codes = self.family.hash(W)
        self.n_neurons = self.codes.shape[0]
        self.n_hashed_ += self.n_neurons
        self._sort()

    def update(self, rows, W_rows):
        """Re-hash only ``rows`` (whose new weights are ``W_rows``)."""
        cupy = import_cupy()
        rows = cupy.asarray(rows, dtype=cupy.int64)
        if rows.size == 0:
            return
        self.codes[rows] = self.family.hash(W_rows)
        self.n_hashed_ += int(rows.size)
        self._sort()

    def _sort(self):
        cupy = import_cupy()
        L = self.family.n_tables
        # keys[t, j] = t * n_codes + code of neuron j in table t, flattened
        # table-major, so position = t * n_neurons + j and j = position % n_neurons.
        keys = self.codes.T + (cupy.arange(L, dtype=cupy.int64) * self.family.n_codes)[:, None]
        keys = keys.ravel()
        order = cupy.argsort(keys)  # CuPy's argsort is stable
        self.sorted_keys = keys[order]
        self.sorted_neurons = (order % self.n_neurons).astype(cupy.int64)

    def query(self, codes, rng=None):
        """Neurons sharing a bucket with each query, one entry per collision.

        Parameters
        ----------
        codes : cupy.ndarray of shape (n, L)
        rng : cupy.random.RandomState or Generator, optional
            Random window in over-full buckets (CPU: a NumPy generator).

        Returns
        -------
        rows, neurons : cupy.ndarray of int64
            Same entries, in the same order, as :meth:`LSHTables.query`
            when ``rng`` is None.
        """
        cupy = import_cupy()
        codes = cupy.asarray(codes, dtype=cupy.int64)
        n, L = codes.shape
        qkeys = (codes + (cupy.arange(L, dtype=cupy.int64) * self.family.n_codes)[None, :]).ravel()
        start = cupy.searchsorted(self.sorted_keys, qkeys, side="left")
        end = cupy.searchsorted(self.sorted_keys, qkeys, side="right")
        size = end - start
        extra = cupy.maximum(size - self.bucket_size, 0)
        if rng is not None:
            # random offset in [0, extra] for over-full buckets (0 elsewhere)
            start = start + (_random(rng, size.shape) * (extra + 1)).astype(cupy.int64) * (extra > 0)
        size = cupy.minimum(size, self.bucket_size)
        # Expand slot q (query row q // L, table q % L) into its `size[q]`
        # entries without a variable-count repeat: output position p belongs
        # to the slot q whose [ends[q] - size[q], ends[q]) contains p.
        ends = cupy.cumsum(size)
        total = int(ends[-1]) if ends.size else 0
        p = cupy.arange(total, dtype=cupy.int64)
        q = cupy.searchsorted(ends, p, side="right")
        offs = p - (ends - size)[q]
        neurons = self.sorted_neurons[start[q] + offs]
        return q // L, neurons


def _random(rng, shape):
    """Uniform [0, 1) floats from a CuPy RandomState or Generator."""
    f = getattr(rng, "random", None) or rng.random_sample
    return f(size=shape)


def _integers(rng, high, size):
    cupy = import_cupy()
    return cupy.minimum((_random(rng, size) * high).astype(cupy.int64), high - 1)


def select_active_gpu(q_rows, q_neurons, n, n_neurons, budget, *, selection="topk",
                      threshold=2, n_pad=None, rng=None, priority=None,
                      forced_rows=None, forced_neurons=None):
    """Each sample's active neurons from its LSH collisions, on the GPU.

    Twin of :func:`skmach.neural_network._sparse_layers.select_active` (same
    parameters, CuPy arrays in and out): collisions are counted per (sample,
    neuron), forced neurons get priority ``2**20``, and each sample keeps at
    most ``budget`` neurons, most collisions first, padded with ``n_pad``
    neurons. With ``rng=None`` (prediction) the result equals the CPU's; with
    a CuPy ``rng`` ties and padding are random (not the CPU's stream).

    Returns
    -------
    idx : cupy.ndarray (n, w) of int64
    mask, forced : cupy.ndarray (n, w) of bool
    """
    cupy = import_cupy()
    budget = int(budget)
    n_pad = budget if n_pad is None else int(min(n_pad, budget))
    rows = [cupy.asarray(q_rows, dtype=cupy.int64)]
    cols = [cupy.asarray(q_neurons, dtype=cupy.int64)]
    weights = [cupy.ones(rows[0].size, dtype=cupy.float64)]
    if forced_rows is not None and len(forced_rows):
        rows.append(cupy.asarray(forced_rows, dtype=cupy.int64))
        cols.append(cupy.asarray(forced_neurons, dtype=cupy.int64))
        weights.append(cupy.full(rows[-1].size, _FORCED))
    if priority is not None:
        priority = cupy.asarray(priority, dtype=cupy.float64)
    if n_pad > 0:
        if rng is not None:
            perm = cupy.argsort(_random(rng, (n_neurons,)))  # a random permutation
            start = _integers(rng, n_neurons, (n,))
            pad = perm[(start[:, None] + cupy.arange(n_pad)) % n_neurons]
        else:
            pad = cupy.broadcast_to(cupy.argsort(-priority)[:n_pad], (n, n_pad))
        rows.append(cupy.repeat(cupy.arange(n, dtype=cupy.int64), n_pad))
        cols.append(pad.ravel().astype(cupy.int64))
        weights.append(cupy.zeros(pad.size, dtype=cupy.float64))
    rows = cupy.concatenate(rows)
    cols = cupy.concatenate(cols)
    keys = rows * n_neurons + cols
    ukeys, inv = cupy.unique(keys, return_inverse=True)
    w = cupy.bincount(inv.ravel(), weights=cupy.concatenate(weights), minlength=ukeys.size)
    urows = ukeys // n_neurons
    ucols = ukeys % n_neurons
    forced = w >= _FORCED
    count = w - forced * _FORCED  # collisions
    if selection == "union":
        score = (count > 0).astype(cupy.float64)
    elif selection == "topk":
        score = count
    elif selection == "threshold":
        score = cupy.where(count >= threshold, count, 0.0)
    else:
        raise ValueError(f"selection must be 'union', 'topk' or 'threshold'; got {selection!r}")
    tie = _random(rng, (ukeys.size,)) if rng is not None else priority[ucols]
    prio = score + 0.5 * tie + forced * _FORCED
    # np.lexsort((-prio, urows)) as two stable sorts: by -prio, then by row.
    o1 = cupy.argsort(-prio)
    order = o1[cupy.argsort(urows[o1])]
    urows, ucols, score, forced = urows[order], ucols[order], score[order], forced[order]
    row_start = cupy.searchsorted(urows, cupy.arange(n))
    rank = cupy.arange(urows.size) - row_start[urows]
    keep = forced | ((rank < budget) & ((score > 0) | (rank < n_pad)))
    urows, ucols, rank, forced = urows[keep], ucols[keep], rank[keep], forced[keep]
    width = max(int(rank.max()) + 1 if rank.size else 1, 1)
    idx = cupy.zeros((n, width), dtype=cupy.int64)
    mask = cupy.zeros((n, width), dtype=bool)
    fmask = cupy.zeros((n, width), dtype=bool)
    idx[urows, rank] = ucols
    mask[urows, rank] = True
    fmask[urows, rank] = forced
    return idx, mask, fmask
