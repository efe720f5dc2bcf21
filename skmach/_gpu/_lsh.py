"""LSH on the GPU: SimHash / DWTA codes, hash tables, retrieval, active sets.

Twins of :mod:`skmach._hashing._lsh` (:class:`~skmach._hashing.SimHash`,
:class:`~skmach._hashing.DWTAHash`, :class:`~skmach._hashing.LSHTables`), and
:func:`select_active_gpu`, which follows its input's array library (NumPy or
CuPy) and gives the result of
:func:`skmach.neural_network._sparse_layers.select_active`; written
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


def cuda_source(dtype):
    """The CUDA source of the DWTA module for a float dtype."""
    ctype = {"float32": "float", "float64": "double"}[np.dtype(dtype).name]
    return f"typedef {ctype} T;\n" + _DWTA_SOURCE


#: Options given to every compilation of the DWTA kernels.
COMPILE_OPTIONS = ()


def _dwta_module(dtype):
    cupy = import_cupy()
    key = (id(cupy), np.dtype(dtype).name)
    mod = _DWTA_MODULES.get(key)
    if mod is None:
        mod = cupy.RawModule(code=cuda_source(dtype), options=COMPILE_OPTIONS)
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
    """Uniform [0, 1) floats from a NumPy/CuPy RandomState or Generator."""
    f = getattr(rng, "random", None) or rng.random_sample
    return f(size=shape)


def _integers(xp, rng, high, size):
    return xp.minimum((_random(rng, size) * high).astype(xp.int64), high - 1)


def _dense_select_max():
    try:  # the CPU's switch between its dense and sorting paths (output width)
        from ..neural_network._sparse_layers import _DENSE_SELECT_MAX
    except ImportError:  # pragma: no cover - renamed on the CPU side
        return 1 << 21
    return _DENSE_SELECT_MAX


def select_active_gpu(q_rows, q_neurons, n, n_neurons, budget, *, selection="topk",
                      threshold=2, n_pad=None, rng=None, priority=None,
                      forced_rows=None, forced_neurons=None):
    """Each sample's active neurons from its LSH collisions, on any array library.

    Same parameters and result as
    :func:`skmach.neural_network._sparse_layers.select_active`, written once
    for the array namespace of ``q_rows`` (CuPy on the GPU, NumPy on the
    CPU; other array API libraries, which lack ``bincount`` and scatter,
    select through NumPy and get their results back in their namespace and
    on their device): collisions are counted per (sample, neuron), forced neurons get
    priority ``2**20``, and each sample keeps at most ``budget`` neurons, most
    collisions first (``"sample"``: drawn proportionally to the collision
    count with ``rng``, as ``"topk"`` without), padded with ``n_pad`` neurons.
    The output width is the CPU's: ``min(max(budget, forced per row), n_neurons)``
    when ``n * n_neurons`` is small enough for the CPU's dense path, else the
    largest kept rank. With ``rng=None`` (prediction) the kept neurons, their
    order, ``mask`` and ``forced`` equal the CPU's (slots where ``mask`` is
    False hold 0 here); with an ``rng`` (NumPy or CuPy generator) ties, draws
    and padding are random (not the CPU's stream).

    Returns
    -------
    idx : array (n, w) of int64
    mask, forced : array (n, w) of bool

    Examples
    --------
    >>> import numpy as np
    >>> idx, mask, _ = select_active_gpu(np.array([0, 0, 0, 1]), np.array([2, 2, 1, 3]),
    ...                                  2, 4, 1, n_pad=0, priority=np.zeros(4))
    >>> idx[mask].tolist()
    [2, 3]
    """
    from ._backend import array_namespace_of, is_cupy_array

    xp = array_namespace_of(q_rows)
    if xp is not np and not is_cupy_array(q_rows):
        # Another array API library (array_api_strict, ...): the standard has
        # no bincount / scatter, so select on NumPy and return the result in
        # the input's namespace, on its device.
        from sklearn.utils._array_api import _convert_to_numpy, device

        def host(a):
            if a is None or isinstance(a, np.ndarray):
                return a
            return _convert_to_numpy(a, xp) if hasattr(a, "__array_namespace__") else \
                np.asarray(a)

        res = select_active_gpu(
            host(q_rows), host(q_neurons), n, n_neurons, budget, selection=selection,
            threshold=threshold, n_pad=n_pad, rng=rng, priority=host(priority),
            forced_rows=host(forced_rows), forced_neurons=host(forced_neurons))
        dev = device(q_rows)
        return tuple(xp.asarray(r, device=dev) for r in res)
    if selection not in ("union", "topk", "sample", "threshold"):
        raise ValueError(
            f"selection must be 'union', 'topk', 'sample' or 'threshold'; got {selection!r}")
    n, n_neurons, budget = int(n), int(n_neurons), int(budget)
    if n < 0 or n_neurons < 1 or budget < 0:
        raise ValueError(f"need n >= 0, n_neurons >= 1, budget >= 0; got {n}, {n_neurons}, "
                         f"{budget}")
    if rng is None and priority is None:
        raise ValueError("priority is required when rng is None (prediction)")
    n_pad = budget if n_pad is None else int(min(n_pad, budget))
    rows = [xp.asarray(q_rows, dtype=xp.int64).ravel()]
    cols = [xp.asarray(q_neurons, dtype=xp.int64).ravel()]
    if rows[0].shape != cols[0].shape:
        raise ValueError("q_rows and q_neurons must have the same length")
    weights = [xp.ones(rows[0].size, dtype=xp.float64)]
    n_forced_max = 0
    if forced_rows is not None and len(forced_rows):
        fr = xp.asarray(forced_rows, dtype=xp.int64).ravel()
        rows.append(fr)
        cols.append(xp.asarray(forced_neurons, dtype=xp.int64).ravel())
        weights.append(xp.full(fr.size, _FORCED))
    if priority is not None:
        priority = xp.asarray(priority, dtype=xp.float64)
    if n_pad > 0 and n > 0:
        if rng is not None:
            perm = xp.argsort(_random(rng, (n_neurons,)))  # a random permutation
            start = _integers(xp, rng, n_neurons, (n,))
            pad = perm[(start[:, None] + xp.arange(n_pad)) % n_neurons]
        else:
            order = xp.argsort(-priority, kind="stable") if xp is np else xp.argsort(-priority)
            pad = xp.broadcast_to(order[:n_pad], (n, n_pad))
        rows.append(xp.repeat(xp.arange(n, dtype=xp.int64), n_pad))
        cols.append(pad.ravel().astype(xp.int64))
        weights.append(xp.zeros(pad.size, dtype=xp.float64))
    rows = xp.concatenate(rows)
    cols = xp.concatenate(cols)
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n
                      or int(cols.min()) < 0 or int(cols.max()) >= n_neurons):
        raise ValueError("rows must be in [0, n) and neurons in [0, n_neurons)")
    keys = rows * n_neurons + cols
    ukeys, inv = xp.unique(keys, return_inverse=True)
    w = xp.bincount(inv.ravel(), weights=xp.concatenate(weights), minlength=ukeys.size)
    urows = ukeys // n_neurons
    ucols = ukeys % n_neurons
    forced = w >= _FORCED
    if forced.any():
        n_forced_max = int(xp.bincount(urows[forced], minlength=max(n, 1)).max())
    count = w - forced * _FORCED  # collisions
    if selection == "union":
        score = (count > 0).astype(xp.float64)
    elif selection in ("topk", "sample"):
        score = count
    else:
        score = xp.where(count >= threshold, count, 0.0)
    tie = _random(rng, (ukeys.size,)) if rng is not None else priority[ucols]
    prio = score + 0.5 * tie
    if selection == "sample" and rng is not None:
        # Gumbel-top-k: without replacement, proportional to the count.
        pos = score > 0
        u = _random(rng, score.shape) * (1 - 1e-12) + 1e-12
        keyed = 1e3 + xp.log(xp.where(pos, score, 1.0)) - xp.log(-xp.log(u))
        prio = xp.where(pos, keyed, tie)
    prio = prio + forced * _FORCED
    # lexsort((-prio, urows)) as two stable sorts: by -prio, then by row.
    o1 = _stable_argsort(xp, -prio)
    order = o1[_stable_argsort(xp, urows[o1])]
    urows, ucols, score, forced = urows[order], ucols[order], score[order], forced[order]
    row_start = xp.searchsorted(urows, xp.arange(n))
    rank = xp.arange(urows.size) - row_start[urows]
    keep = forced | ((rank < budget) & ((score > 0) | (rank < n_pad)))
    urows, ucols, rank, forced = urows[keep], ucols[keep], rank[keep], forced[keep]
    if n * n_neurons <= _dense_select_max():
        width = min(max(budget, n_forced_max, 1), n_neurons)
    else:
        width = max(int(rank.max()) + 1 if rank.size else 1, 1)
    idx = xp.zeros((n, width), dtype=xp.int64)
    mask = xp.zeros((n, width), dtype=bool)
    fmask = xp.zeros((n, width), dtype=bool)
    idx[urows, rank] = ucols
    mask[urows, rank] = True
    fmask[urows, rank] = forced
    return idx, mask, fmask


def _stable_argsort(xp, a):
    # NumPy needs kind="stable"; CuPy's argsort is a stable radix sort.
    return xp.argsort(a, kind="stable") if xp is np else xp.argsort(a)


# --------------------------------------------------------------------------
# NumPy references of the raw kernels (used by the CuPy stand-in, _standin.py)
# --------------------------------------------------------------------------

def _ref_dwta_wta(grid, block, args, defines):
    X, n, d, bins, n_hashes, bin_size, h, empty = args
    n, d, n_hashes, bin_size = int(n), int(d), int(n_hashes), int(bin_size)
    X = np.asarray(X).reshape(n, d)
    bins = np.asarray(bins).reshape(n_hashes, bin_size)
    V = X[:, bins]  # (n, n_hashes, bin_size)
    nz = V != 0
    # largest non-zero, first on ties: argmax over non-zeros (zeros -> -inf)
    Vm = np.where(nz, V, -np.inf)
    found = nz.any(axis=2)
    h.reshape(n, n_hashes)[...] = np.where(found, np.argmax(Vm, axis=2), 0)
    empty.reshape(n, n_hashes)[...] = ~found


def _ref_dwta_densify(grid, block, args, defines):
    h0, empty, n, n_hashes, probes, max_probes, bin_size, h = args
    n, n_hashes, max_probes, bin_size = int(n), int(n_hashes), int(max_probes), int(bin_size)
    h0 = np.asarray(h0).reshape(n, n_hashes)
    empty = np.asarray(empty).reshape(n, n_hashes).astype(bool)
    probes = np.asarray(probes).reshape(n_hashes, max_probes)
    out = np.where(empty, 0, h0)
    done = ~empty
    for p in range(max_probes):
        src = probes[:, p]
        ok = ~done & ~empty[:, src]
        out = np.where(ok, (h0[:, src] + p + 1) % bin_size, out)
        done |= ok
    h.reshape(n, n_hashes)[...] = out


#: NumPy reference of each raw kernel, by name (see :mod:`._standin`).
NUMPY_REFERENCES = {"dwta_wta": _ref_dwta_wta, "dwta_densify": _ref_dwta_densify}
