"""The LSH-sparse multi-layer network, independent of the estimator API.

:class:`SparseNetwork` holds the weights, the hash tables of the LSH-enabled
layers, the Adam moments and the cost counters; the numerical work is done by
the compiled kernels of :mod:`skmach._kernels._lsh_train` and
:mod:`skmach._kernels._lsh_tables` (their NumPy references, and those of
:mod:`._sparse_layers`, are what the tests compare them with).

With no LSH layer (or a budget covering every neuron) the same code trains
the plain dense network, with BLAS products and an in-place Adam step: that
is the dense reference of every comparison.

Activations travel between layers as ``("dense", X)`` (a C-contiguous
float32 array) or ``("ragged", xs, xe, xi, xv)`` (per-sample entries: a CSR
batch, or the active neurons of an LSH layer).
"""

import math
import threading
import time
from collections import deque, namedtuple
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np
import scipy.sparse as sp

from .._hashing import make_hash_family
from .._kernels import _lsh_tables as KT
from .._kernels import _lsh_train as KN
from .._kernels import numba_threads, one_thread_if_small

_B1, _B2, _EPS = 0.9, 0.999, 1e-8
#: Adam work per parameter updated, in multiply-add equivalents (accounting)
_ADAM_COST = 4.0
#: operations per parameter of a momentum catch-up (two decays and a step)
_CATCH_UP_COST = 3.0
#: negatives a training sample reports to its labels' lists (the largest logits)
_HARD_PER_SAMPLE = 16
_NO_ROWS = np.zeros(0, dtype=np.int64)  # no catch-up (input rows: zero gradient)
_NO_STEPS = np.zeros(0, dtype=np.float64)  # its (unused) step-size table
#: buckets per table at most (2**15); wider codes are folded
_MAX_LOG2_BUCKETS = 15
#: share of an LSH output layer's budget kept for the importance-weighted
#: padding in training when the layer has hard-negative lists: the lists (up
#: to half the budget) and the tables' candidates take at most the rest.
#: Without it a sample whose lists and candidates filled the budget got a few
#: padding slots or none, each standing for thousands of outputs. debian-paths
#: (400,000 paths, scored on the last 20,000, 1 epoch, 32 hard negatives): at
#: 0.5% active P@1 0.27 -> 0.78 (the fit collapsed), at 1% 0.819 -> 0.817 and
#: 0.808 -> 0.815 (seeds 0 and 1); in full at 1%, test P@1 0.9378 -> 0.9357.
#: Not without lists: on 100,000 synthetic classes over 40,000 samples
#: (0.5% active) the reserved padding lowered P@1 from 0.446 to 0.135
#: (lsh_mlp_notes.md, ninth round).
_PADDING_RESERVE = 0.1
#: a hashing or retrieval kernel's scalar step (a comparison, a read of a
#: bucket entry) against the vectorised multiply-adds that
#: :func:`~skmach._kernels.one_thread_if_small` counts: measured on
#: debian-paths (DWTA of 128 hidden units, 0.75 ms for 205,000 comparisons)
#: and delicious (retrieval, 0.14 ms for 43,000 entries) against a forward
#: pass (0.18 ms for 2.4 million multiply-adds), within a factor of two
_SCALAR_STEPS = 32
#: batches whose first-layer active sets the prefetching thread selects
#: ahead of training at most (:meth:`SparseNetwork.epoch_batches`), and the
#: memory their inputs may take (at least 2 batches: the one trained on and
#: the next)
_LOOKAHEAD = 8
_LOOKAHEAD_BYTES = 64 * 2**20

#: a batch ready for training: its input activation, and its first layer's
#: selection (``_select``'s result), the selection's slots grouped by neuron
#: (``inverse_map``) and their accounting (``[hashing s, retrieval s,
#: multiply-adds, forward s]``), or None
_Prepared = namedtuple("_Prepared", "act sel inv acct")


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


#: dense products (a dense layer over a dense input, in training) of at
#: least this many multiply-adds are computed in blocks (:func:`_blocked_product`)
_GEMM_MIN = 32_000_000
#: at most this many blocks per product, whatever the threads
_GEMM_BLOCKS = 4
#: the rows (columns) of a block are a multiple of this (the register tile of
#: OpenBLAS's single-precision kernels on x86-64 with AVX-512)
_GEMM_TILE = 16
#: a product is split only where the operand each block reads again in full
#: moves at most one value per this many multiply-adds
_GEMM_REPACK = 64


def _gemm_blocks(n, size):
    """Bounds of blocks of ``size`` (a multiple of the tile) over ``n``; a
    last block shorter than a tile joins the one before."""
    bounds = list(range(0, n, size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < _GEMM_TILE:
        del bounds[-2]
    return bounds


def _blocked_product(A, B, out, helpers=None):
    """``out[:] = A @ B`` (float32, ``out`` C-contiguous) by single-threaded
    BLAS calls: a large product in blocks of columns (when ``A`` is the
    smaller operand, which each block then reads again) or of rows, taken
    by the calling thread and, if given, ``helpers = (pool, n)``: ``n``
    threads of a ``ThreadPoolExecutor``.

    The same sums whatever the threads: OpenBLAS's own threads split a
    product's sums otherwise than one thread does (a dense fit at
    ``n_jobs=2`` ended with other weights than at 1, in the 7th digit),
    while a block's single-threaded sums do not depend on which thread runs
    it, and the blocks do not depend on the threads. Their rows or columns are
    a multiple of :data:`_GEMM_TILE`, at most :data:`_GEMM_BLOCKS` of them,
    the last at least a tile: the sums are then those of the whole product
    on one thread (checked on every product shape of the benchmarks'
    networks, whole and last batches; a block of 1 or 4 rows differed). A
    product whose operands are both large (the input gradient of a wide
    output layer: ``(n, K) @ (K, d)``) is one call: each block would read an
    operand of K values a row again.
    """
    m, k = A.shape
    n = B.shape[1]
    macs = m * k * n
    by_cols = m * k <= k * n
    extent = n if by_cols else m
    reread = (_GEMM_BLOCKS - 1) * min(m * k, k * n)
    if (macs < _GEMM_MIN or extent < 2 * _GEMM_TILE
            or reread * _GEMM_REPACK > macs):
        np.dot(A, B, out=out)
        return out
    bounds = _gemm_blocks(extent, _GEMM_TILE * -(-extent // (_GEMM_TILE * _GEMM_BLOCKS)))

    def block(u):
        i, j = bounds[u], bounds[u + 1]
        if by_cols:
            np.matmul(A, B[:, i:j], out=out[:, i:j])
        else:
            np.dot(A[i:j], B, out=out[i:j])

    todo = iter(range(len(bounds) - 1))
    lock = threading.Lock()

    def work():  # take the next block until none is left
        while True:
            with lock:
                u = next(todo, None)
            if u is None:
                return
            block(u)

    running = [] if helpers is None else [helpers[0].submit(work) for _ in range(helpers[1])]
    work()  # the calling thread takes blocks too
    for f in running:
        f.result()
    return out


#: an LSH first layer reads a dense input with at most this fraction of
#: non-zeros as ragged. Measured on MNIST (19% non-zeros): gathers made the
#: ragged forward 5x and the entry-lazy Adam 6x slower than the vectorised
#: dense-row kernels, so dense inputs stay dense (0: never converted).
_RAGGED_MAX_DENSITY = 0.0


def _n_samples(act):
    """The samples of an activation (``("dense", X)`` or ``("ragged", ...)``)."""
    return len(act[1]) if act[0] == "ragged" else act[1].shape[0]


def as_activation(X, ragged_if_sparse=False):
    """Network input as an activation (dense float32, or ragged from CSR).

    With ``ragged_if_sparse``, a dense ``X`` with few non-zeros becomes ragged.
    """
    if (ragged_if_sparse and _RAGGED_MAX_DENSITY > 0 and not sp.issparse(X)
            and np.count_nonzero(X) <= _RAGGED_MAX_DENSITY * X.size):
        X = sp.csr_matrix(X)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        X.sort_indices()
        ip = X.indptr.astype(np.int64)
        return ("ragged", ip[:-1].copy(), ip[1:].copy(), X.indices.astype(np.int64),
                _f32(X.data))
    return ("dense", _f32(X))


def batch_activation(X, rows, ragged_if_sparse=False):
    """``as_activation(X[rows], ragged_if_sparse)``; a CSR ``X`` with sorted
    indices is gathered by a compiled kernel (no SciPy matrix built per
    batch: 0.1-0.2 ms of Python per delicious batch, a tenth of its step)."""
    if sp.issparse(X) and X.format == "csr" and X.has_sorted_indices:
        ptr, xi, xv = KN.take_rows(X.indptr, X.indices, X.data, np.asarray(rows))
        return ("ragged", ptr[:-1].copy(), ptr[1:].copy(), xi, xv)
    return as_activation(X[rows], ragged_if_sparse=ragged_if_sparse)


def _ragged_to_csr(act, n_cols):
    _, xs, xe, xi, xv = act
    n = len(xs)
    lengths = xe - xs
    keep = np.concatenate([np.arange(a, b) for a, b in zip(xs, xe)]) if n else np.zeros(0, int)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return sp.csr_matrix((xv[keep], xi[keep], indptr), shape=(n, n_cols))


class _Layer:
    #: bucket entries examined per sample by the last selection (a work
    #: estimate for the next one's thread count)
    _examined = 0.0

    def __init__(self, n_in, n_out, lsh, budget, rng):
        bound = math.sqrt(6.0 / (n_in + n_out))
        W = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        self.b = rng.uniform(-bound, bound, n_out).astype(np.float32)
        self.n_in, self.n_out = n_in, n_out
        self.lsh = bool(lsh) and budget < n_out
        self.budget = int(min(budget, n_out))
        if self.lsh:
            self.P = np.ascontiguousarray(W)  # (n_out, n_in): neuron rows
        else:
            self.P = np.ascontiguousarray(W.T)  # (n_in, n_out): input rows
        self.M = np.zeros_like(self.P)
        self.V = np.zeros_like(self.P)
        self.Mb = np.zeros_like(self.b)
        self.last_step = np.zeros(n_out, dtype=np.int64)  # last Adam step of each row
        # an LSH output layer's hard negatives per class (SparseNetwork)
        self.neg_ids = self.neg_cnt = None
        self.Vb = np.zeros_like(self.b)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_seen", None)  # scratch flags (SparseNetwork._seen)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("neg_ids", None)  # pickled before hard negatives
        self.__dict__.setdefault("neg_cnt", None)
        if "last_step" not in state:  # pickled before the momentum catch-up
            self.last_step = np.zeros(self.n_out, dtype=np.int64)
            self._no_last_step = True  # set to the network's step by its __setstate__

    @property
    def W(self):
        """Weights ``(n_out, n_in)`` (a view for dense layers)."""
        return self.P if self.lsh else self.P.T


class SparseNetwork:
    """ReLU network whose LSH layers compute only retrieved neurons.

    Parameters
    ----------
    sizes : list of int
        ``[n_features, hidden..., n_outputs]``.
    lsh : list of bool
        One per layer (hidden layers then output layer).
    budgets : list of int
        Active neurons per sample for each layer (ignored for dense layers).
    hash_family, n_tables, n_bits, selection, threshold, min_active,
    padding_weight, bucket_size, rebuild_interval, rebuild_decay, alpha, learning_rate, \
rerank, sketch_dim, hard_negatives, gradient_threshold :
        See :class:`~skmach.neural_network.LSHSparseMLPClassifier`
        (``rerank`` takes effect once :meth:`fit_sketch` has seen the input).
    rng : numpy.random.Generator
    n_threads : int
        Threads of the parallel kernels (chunking only: results do not
        depend on it).
    """

    def __init__(self, sizes, lsh, budgets, *, hash_family="dwta", n_tables=50, n_bits=6,
                 selection="topk", threshold=2, min_active=1.0, padding_weight="importance",
                 bucket_size=128,
                 rebuild_interval=50, rebuild_decay=0.1, alpha=1e-4, learning_rate=1e-3,
                 rerank=0, sketch_dim=32, hard_negatives=0, gradient_threshold=0.0, rng=None,
                 n_threads=1):
        self.rng = np.random.default_rng(rng)
        self.hard_negatives = int(hard_negatives)
        self.gradient_threshold = float(gradient_threshold)
        self.rerank = int(rerank)
        self.sketch_dim = int(sketch_dim)
        self.selection = KT.SELECTIONS[selection]
        self.threshold = int(threshold)
        self.min_active = float(min_active)
        self.padding_weight = padding_weight
        self.bucket_size = int(bucket_size)
        self.rebuild_interval = rebuild_interval
        self.rebuild_decay = rebuild_decay
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        self.n_chunks = max(1, 4 * int(n_threads))
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layer = _Layer(n_in, n_out, lsh[i], budgets[i], self.rng)
            if layer.lsh:
                # Neurons are hashed as [w, b] and inputs as [x, 1].
                layer.family = make_hash_family(hash_family, n_in + 1, n_bits, n_tables,
                                                self.rng)
                fam = layer.family
                layer.log2_buckets = min(int(math.ceil(math.log2(fam.n_codes))),
                                         _MAX_LOG2_BUCKETS)
                layer.n_buckets = 1 << layer.log2_buckets
                if hash_family == "dwta":
                    layer.cptr, layer.cent = KT.dwta_inverse(fam.bins, n_in + 1)
                layer.pad_perm = self.rng.permutation(n_out).astype(np.int64)
                layer.codes = self._hash_neurons(layer, np.arange(n_out))
                layer.dirty = np.zeros(n_out, dtype=bool)
                self._build(layer)
            self.layers.append(layer)
        out = self.layers[-1]
        if out.lsh and self.hard_negatives > 0:
            # each label's remembered hard negatives (record_hard_negatives)
            out.neg_ids = np.full((out.n_out, self.hard_negatives), -1, dtype=np.int32)
            out.neg_cnt = np.zeros((out.n_out, self.hard_negatives), dtype=np.int32)
        self.t = 0
        # Schedule and accounting.
        self.n_batches = 0
        self.n_rebuilds = 0
        self.next_rebuild = int(rebuild_interval)
        self.rebuild_batches = []
        self.n_samples_seen = 0
        self.flops = 0.0
        self.dense_flops = 0.0
        self.hash_flops = 0.0
        self.active_sum = np.zeros(len(self.layers))
        self.examined_sum = np.zeros(len(self.layers))
        self.times = dict(hashing=0.0, retrieval=0.0, forward=0.0, loss=0.0, backward=0.0,
                          update=0.0, rebuild=0.0)

    # ------------------------------------------------------------------ #
    # Hashing and tables
    # ------------------------------------------------------------------ #
    def _codes(self, layer, act):
        fam = layer.family
        n = _n_samples(act)
        codes = np.empty((n, fam.n_tables), dtype=np.int64)
        # the kernels' scalar steps (comparisons, random reads) count
        # _SCALAR_STEPS each against one_thread_if_small's vectorised steps
        if act[0] == "ragged":
            steps = float(np.sum(fam.cost(act[2] - act[1] + 1)))
        if fam.__class__.__name__ == "DWTAHash":
            if act[0] == "dense":
                steps = n * float(fam.cost(None))
            with one_thread_if_small(_SCALAR_STEPS * steps):
                if act[0] == "dense":
                    KT.dwta_dense(act[1], fam.bins, fam.probes, fam.n_bits, fam.n_tables,
                                  codes)
                else:
                    _, xs, xe, xi, xv = act
                    KT.dwta_ragged(xs, xe, xi, xv, layer.n_in, layer.cptr, layer.cent,
                                   fam.bins.shape[0], fam.bin_size, fam.probes, fam.n_bits,
                                   fam.n_tables, codes)
        else:
            P = fam.projections
            if act[0] == "dense":
                X = act[1]
                if X.shape[1] == P.shape[0]:
                    proj = X @ P
                else:
                    proj = X @ P[:-1]
                    proj += P[-1]
                # the products above ran in BLAS: here only the codes' bits
                with one_thread_if_small(_SCALAR_STEPS * n * fam.n_tables * fam.n_bits):
                    KT.simhash_bits(proj, fam.n_bits, fam.n_tables, codes)
            else:
                _, xs, xe, xi, xv = act
                with one_thread_if_small(_SCALAR_STEPS * steps):
                    KT.simhash_ragged(xs, xe, xi, xv, P, fam.n_bits, fam.n_tables, codes)
        return KT.fold_codes(codes, fam.n_codes, layer.log2_buckets)

    def _hash_neurons(self, layer, rows):
        layer.n_hashed = getattr(layer, "n_hashed", 0) + len(rows)
        V = _f32(np.hstack([layer.P[rows], layer.b[rows][:, None]]))
        return self._codes(layer, ("dense", V))

    def _build(self, layer):
        order = self.rng.permutation(layer.n_out).astype(np.int64)
        layer.ptr, layer.ids = KT.build_tables(layer.codes, layer.n_buckets,
                                               self.bucket_size, order)

    def set_input_cache(self, n_rows):
        """Cache the first layer's query buckets of ``n_rows`` training rows.

        The network input does not change during a fit, nor the hash functions
        (only the tables are rebuilt), so the buckets an input row queries in
        an LSH first layer are computed once, in the first epoch, and looked
        up afterwards. Pass ``0`` to drop the cache. The trained model is the
        same with or without it.
        """
        layer = self.layers[0]
        if n_rows and layer.lsh:
            # buckets < 2**15: int32 halves the cache
            self._in_codes = np.full((n_rows, layer.family.n_tables), -1, dtype=np.int32)
        else:
            self._in_codes = None
        # and the re-ranking's query sketches, (x - mu) U (NaN: not yet)
        if n_rows and layer.lsh and getattr(layer, "sketch", None) is not None:
            self._in_sketch = np.full((n_rows, layer.sketch.shape[1]), np.nan,
                                      dtype=np.float32)
        else:
            self._in_sketch = None

    _in_codes = None
    _in_sketch = None
    #: networks pickled before ``padding_weight`` existed trained without it
    padding_weight = "none"
    #: and those pickled before ``rerank`` existed did not re-rank
    rerank = 0

    # ------------------------------------------------------------------ #
    # Batches, with the first layer's active sets selected ahead
    # ------------------------------------------------------------------ #
    def prefetches(self):
        """Whether :meth:`epoch_batches` selects the first layer's active
        sets ahead of training: an LSH first layer that is not the output
        layer (an output layer's hard-negative lists change every batch)."""
        return self.layers[0].lsh and len(self.layers) > 1

    def epoch_batches(self, X, order, batch_size, *, cached=False, prefetch=0):
        """An epoch's minibatches: yields ``(rows, seeds, prepared)`` for
        ``order`` (training row numbers) cut into batches of ``batch_size``,
        to pass to :meth:`train_batch` in turn (``cached``: the rows index
        the first layer's cache, :meth:`set_input_cache`).

        An LSH first layer that is not the output layer (:meth:`prefetches`)
        selects a sample's active set from its input, the hash tables and
        the sample's seed: not from the weights that training changes
        between two rebuilds of the tables. So the batches up to the next
        rebuild have their seeds drawn at once (in the order
        :meth:`train_batch` draws them) and, with ``prefetch`` threads, their
        input gathered and their first layer's active sets selected on a
        thread of its own (the kernels release the GIL), at most
        :data:`_LOOKAHEAD` batches ahead (fewer where their inputs would take
        more than :data:`_LOOKAHEAD_BYTES`), while the calling thread trains.
        Training at 2 threads then keeps both cores busy without waking
        Numba's sleeping threads for each kernel. The model is the same with
        and without prefetching, whatever the threads: each sample's
        selection does not depend on the others (tested).
        """
        starts = range(0, len(order), batch_size)
        ahead = self.prefetches() and prefetch > 0
        pool = ThreadPoolExecutor(1, thread_name_prefix="skmach-select") if ahead else None
        # a batch's input as the first layer reads it: float32 values (and
        # int64 columns where sparse)
        row_bytes = 12 * X.nnz / max(X.shape[0], 1) if sp.issparse(X) else 4 * X.shape[1]
        look = int(min(_LOOKAHEAD, max(2, _LOOKAHEAD_BYTES // max(batch_size * row_bytes, 1))))
        try:
            b = 0
            while b < len(starts):
                k = len(starts) - b
                if any(la.lsh for la in self.layers):  # up to the next rebuild
                    k = min(k, max(1, self.next_rebuild - self.n_batches))
                block = [order[i:i + batch_size] for i in starts[b:b + k]]
                seeds = [self._draw_seeds(len(r)) for r in block]
                if pool is None:
                    for r, sd in zip(block, seeds):
                        yield r, sd, self._prepare(X, r, sd, cached)
                else:
                    todo = deque()
                    for j in range(len(block)):
                        for u in range(j + len(todo), min(j + look, len(block))):
                            todo.append(pool.submit(self._prepare, X, block[u], seeds[u],
                                                    cached, prefetch))
                        yield block[j], seeds[j], todo.popleft().result()
                b += k
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _prepare(self, X, rows, seeds, cached, n_threads=0):
        """Batch ``rows`` of ``X`` for :meth:`train_batch`: its input and,
        where :meth:`prefetches`, its first layer's active sets (selected on
        ``n_threads`` threads; 0: the caller's setting)."""
        act = batch_activation(X, rows, ragged_if_sparse=self.layers[0].lsh)
        if not self.prefetches():
            return _Prepared(act, None, None, None)
        layer = self.layers[0]
        acct = [0.0, 0.0, 0.0, 0.0]
        with numba_threads(n_threads) if n_threads else nullcontext():
            sel = self._select(layer, act, True, None, seeds[0], rows if cached else None,
                               acct)
            t0 = time.perf_counter()
            inv = KN.inverse_map(sel[0], sel[1], sel[2], layer.n_out)
        acct[3] = time.perf_counter() - t0
        return _Prepared(act, sel, inv, acct)

    # ------------------------------------------------------------------ #
    # Re-ranking in a sketch of the first layer's input
    # ------------------------------------------------------------------ #
    def fit_sketch(self, X, max_rows=2_000):
        """The subspace the first LSH layer re-ranks its candidates in.

        With ``rerank > 0`` and an LSH first layer that is not the output
        layer, a sample's ``rerank * budget`` neurons with the most collisions
        are re-scored by ``w.x + b`` computed in the span of the top
        ``sketch_dim`` principal directions of the input (``U``, from at most ``max_rows`` rows of
        ``X``, centred when dense): ``w.mu + b + (w U).(U^T (x - mu))``, and
        the ``budget`` best are active. The neuron side ``[w.mu + b, w U]``
        is refreshed with the tables (:meth:`_maybe_rebuild`), so the
        re-ranking is as fresh as the retrieval. Does nothing (and draws no
        random numbers) otherwise.
        """
        layer = self.layers[0]
        layer.sketch = None
        if not (self.rerank and layer.lsh and len(self.layers) > 1):  # not an output layer
            return
        from sklearn.utils.extmath import randomized_svd

        t0 = time.perf_counter()
        n = X.shape[0]
        rows = np.sort(self.rng.choice(n, min(n, max_rows), replace=False))
        A = X[rows]
        if sp.issparse(A):  # uncentred: centring would densify the rows
            mu = np.zeros(A.shape[1])
            A = sp.csr_matrix(A, dtype=np.float64)
        else:
            A = np.asarray(A, dtype=np.float64)
            mu = A.mean(axis=0)
            A = A - mu
        m = max(1, min(self.sketch_dim, *A.shape))
        _, _, Vt = randomized_svd(A, m, n_iter=4,
                                  random_state=int(self.rng.integers(2**31 - 1)))
        layer.sk_U = _f32(Vt.T)
        layer.sk_mu = _f32(mu)
        layer.sk_shift = _f32(mu @ Vt.T)
        # the neurons' [w.mu + b] and [w U]
        layer.sketch = np.empty((layer.n_out, m), dtype=np.float32)
        layer.sketch0 = np.empty(layer.n_out, dtype=np.float32)
        self._refresh_sketch(layer, np.arange(layer.n_out))
        self.times["rebuild"] += time.perf_counter() - t0  # the index's upkeep

    def _refresh_sketch(self, layer, rows):
        W = layer.P[rows]
        layer.sketch0[rows] = W @ layer.sk_mu + layer.b[rows]
        m = layer.sk_U.shape[1]
        layer.sketch[rows] = W @ layer.sk_U
        self.flops += len(rows) * layer.n_in * (m + 1)

    @staticmethod
    def _per_row_cache(cache, rows, missing, compute, act):
        """``compute(act)`` for the training ``rows`` of a batch, read from
        ``cache`` (one entry per training row; ``missing(cache[:, 0])`` marks
        rows not computed yet) and computed for the missing rows only."""
        rows = np.asarray(rows, dtype=np.int64)
        todo = np.flatnonzero(missing(cache[rows, 0]))
        if len(todo):
            if act[0] == "dense":
                cache[rows[todo]] = compute((act[0], act[1][todo]))
            else:  # ragged input: the whole batch, keep the new rows
                cache[rows[todo]] = compute(act)[todo]
        return cache[rows]

    def _query_sketch(self, layer, act, rows, fl=None):
        """``(x - mu) U`` per sample, from the cache where computed
        (``rows``: training rows, :meth:`set_input_cache`); ``fl`` as in
        :meth:`_rerank_query`."""
        if rows is None or self._in_sketch is None:
            return self._rerank_query(layer, act, fl)
        return self._per_row_cache(self._in_sketch, rows, np.isnan,
                                   lambda a: self._rerank_query(layer, a, fl), act)

    def _rerank_query(self, layer, act, fl=None):
        """The query sketches ``(x - mu) U``; adds their multiply-adds to
        ``fl[0]`` (a one-element list) when given."""
        m = layer.sk_U.shape[1]
        if act[0] == "dense":
            Q = act[1] @ layer.sk_U
            Q -= layer.sk_shift
            work = float(act[1].size) * m
        else:
            _, xs, xe, xi, xv = act
            Q = np.empty((len(xs), m), dtype=np.float32)
            KT.sketch_ragged(xs, xe, xi, xv, layer.sk_U, layer.sk_shift, Q)
            work = float(len(xv)) * m
        if fl is not None:
            fl[0] += work
        return Q

    def _rerank(self, layer, act, query, n_chunks, examined, distinct, rows=None):
        """The active sets of a re-ranking layer (:meth:`fit_sketch`): of the
        ``n_cand`` candidates :func:`~skmach._kernels._lsh_tables.query_select`
        would return (``query``: its arguments before ``n_chunks``), the
        ``budget`` best in the sketch, in one kernel; returns ``(idx, cnt,
        multiply-adds)``, ``idx`` of width ``budget``. Writes ``examined`` and
        ``distinct``; ``rows`` as in :meth:`_select`."""
        n = len(examined)
        m = layer.sk_U.shape[1]
        fl = [0.0]  # the query sketches computed add theirs
        Q = self._query_sketch(layer, act, rows, fl)
        out = np.zeros((n, layer.budget), dtype=np.int64)
        out_cnt = np.zeros(n, dtype=np.int64)
        n_cand = np.zeros(n, dtype=np.int64)  # candidates scored per sample
        KT.query_rerank(*query, layer.sketch, layer.sketch0, Q, layer.budget, n_chunks, out,
                        out_cnt, n_cand, examined, distinct)
        return out, out_cnt, fl[0] + float(n_cand.sum()) * (m + 1)

    def _input_codes(self, layer, act, rows):
        """Query buckets of the first layer, from the cache where computed."""
        if rows is None or self._in_codes is None:
            return self._codes(layer, act)
        return self._per_row_cache(self._in_codes, rows, lambda c: c < 0,
                                   lambda a: self._codes(layer, a), act).astype(np.int64)

    def _select(self, layer, act, train, forced, seeds, rows=None, acct=None):
        """Active sets: ``(s, e, ind, fmask)`` (ragged) and entries examined.

        ``rows``: the training rows of the batch, for the first layer's cache
        of query buckets (:meth:`set_input_cache`). In training the hashing
        and retrieval seconds and the re-ranking's multiply-adds go to the
        network's counters, or are added to ``acct`` (as in :meth:`_account`)
        when given: a selection made on the prefetching thread
        (:meth:`epoch_batches`), counted by the training thread.
        """
        n = _n_samples(act)
        t0 = time.perf_counter()
        qb = self._input_codes(layer, act, rows)
        t1 = time.perf_counter()
        if forced is None:
            fptr = np.zeros(n + 1, dtype=np.int64)
            flab = np.zeros(0, dtype=np.int64)
        else:
            fptr, flab = forced
        fpos = np.diff(fptr)  # the labels: the forced positives
        lists_read = 0
        lists = train and forced is not None and layer.neg_ids is not None
        if lists:
            # the labels' remembered hard negatives join them, as negatives
            gptr = np.empty(n + 1, dtype=np.int64)
            glab = np.empty(len(flab) * (1 + layer.neg_ids.shape[1]), dtype=np.int64)
            # at most half the budget: the tables' candidates keep the rest
            KT.with_hard_negatives(fptr, flab, layer.neg_ids, layer.budget // 2, gptr, glab,
                                   self._seen(layer))
            fptr, flab = gptr, glab[:gptr[-1]]
            lists_read = fpos * layer.neg_ids.shape[1]  # at most: the lookups' cost
        rerank = getattr(layer, "sketch", None) is not None
        # re-ranked: the best candidates by collisions, then the budget's best
        n_cand = min(layer.budget * self.rerank, layer.n_out) if rerank else layer.budget
        examined = np.zeros(n, dtype=np.int64)
        distinct = np.zeros(n, dtype=np.int64)
        n_pad = int(math.ceil(self.min_active * layer.budget))
        if lists and self.padding_weight == "importance" and n_pad >= layer.budget:
            # an output layer with hard negatives: part of the budget stays
            # for the padding
            n_cand = max(1, layer.budget - int(math.ceil(_PADDING_RESERVE * layer.budget)))
        if seeds is None:
            seeds = np.zeros(n, dtype=np.uint64)
        query = (layer.ptr, layer.ids, qb, layer.n_buckets, layer.n_out, n_cand, n_pad, fptr,
                 flab, fpos, self.selection, self.threshold, train, seeds, layer.pad_perm)
        n_chunks = min(self.n_chunks, max(n, 1))
        work = 0.0
        if rerank:  # a first layer: nothing forced, no padding weights
            idx, cnt, work = self._rerank(layer, act, query, n_chunks, examined, distinct, rows)
            n_sel = cnt
            fmask = np.zeros(idx.shape, dtype=np.bool_)
        else:
            max_forced = int(np.max(np.diff(fptr))) if n else 0
            idx = np.zeros((n, max(n_cand, n_pad, max_forced, 1)), dtype=np.int64)
            fmask = np.zeros(idx.shape, dtype=np.bool_)
            cnt = np.zeros(n, dtype=np.int64)
            n_sel = np.zeros(n, dtype=np.int64)
            # bucket entries read, candidates ranked, padding drawn: scalar steps
            # (the entries examined: as in the previous batches)
            steps = n * (layer._examined + n_cand + n_pad)
            with one_thread_if_small(_SCALAR_STEPS * steps):
                KT.query_select(*query, n_chunks, idx, cnt, fmask, examined, distinct, n_sel)
            if n:
                layer._examined = float(examined.mean())
        examined += lists_read  # the hard-negative lists are entries examined too
        t2 = time.perf_counter()
        if train:  # the cost accounting is the training's; predict changes nothing
            if acct is None:
                self._account((t1 - t0, t2 - t1, work, 0.0))
            else:
                acct[0] += t1 - t0
                acct[1] += t2 - t1
                acct[2] += work
        s = np.arange(n, dtype=np.int64) * idx.shape[1]
        return (s, s + cnt, idx.ravel(), fmask.ravel(), examined, s + n_sel)

    def _account(self, acct):
        """Add a selection's ``[hashing s, retrieval s, multiply-adds,
        forward s]`` (the last: a prepared batch's inverse map)."""
        self.times["hashing"] += acct[0]
        self.times["retrieval"] += acct[1]
        self.flops += acct[2]
        self.times["forward"] += acct[3]

    # ------------------------------------------------------------------ #
    # Forward
    # ------------------------------------------------------------------ #
    @staticmethod
    def _seen(layer):
        """An all-False flag per neuron of ``layer`` (scratch, kept False)."""
        seen = layer.__dict__.get("_seen")
        if seen is None:
            seen = layer._seen = np.zeros(layer.n_out, dtype=np.bool_)
        return seen

    def _forward_layer(self, layer, act, z_only_active, train, forced, seeds, rows=None,
                       sel=None, inv=None):
        if z_only_active:
            if sel is None:  # else selected already (:meth:`epoch_batches`), with inv
                sel = self._select(layer, act, train, forced, seeds, rows)
            s, e, ind, fm, examined, pad_start = sel
            t0 = time.perf_counter()
            z = np.zeros(len(ind), dtype=np.float32)
            # the slots grouped by neuron: the backward pass needs them too
            # (an output layer with gradient_threshold groups the slots it
            # keeps, after the loss: sample by sample here, the same sums)
            thinned = layer is self.layers[-1] and self.gradient_threshold > 0
            if train and inv is None and not thinned:
                inv = KN.inverse_map(s, e, ind, layer.n_out)
            if act[0] == "dense" and inv is not None:
                # neuron by neuron: each active row read once per batch
                with one_thread_if_small(len(ind) * layer.n_in):
                    KN.fwd_active_by_row(layer.P, layer.b, act[1], *inv,
                                         min(self.n_chunks, max(len(inv[0]), 1)), z)
            elif act[0] == "dense":  # a prediction, or the thinned output layer
                with one_thread_if_small(len(ind) * layer.n_in) if train else nullcontext():
                    KN.fwd_active_dense_in(layer.P, layer.b, act[1], s, e, ind, z)
            else:
                _, xs, xe, xi, xv = act
                KN.fwd_active_ragged_in(layer.P, layer.b, s, e, ind, xs, xe, xi, xv, z)
            if train:
                self.times["forward"] += time.perf_counter() - t0
            return ("active", s, e, ind, z, fm, examined, pad_start, inv)
        t0 = time.perf_counter()
        n = _n_samples(act)
        Z = np.empty((n, layer.n_out), dtype=np.float32)
        if act[0] == "ragged" and layer.lsh:  # every neuron (prediction)
            a = act[1:]
            Zr = np.empty(n * layer.n_out, dtype=np.float32)
            # the active-set kernel with each sample's active set = all neurons
            KN.fwd_active_ragged_in(layer.P, layer.b, np.arange(n) * layer.n_out,
                                    (np.arange(n) + 1) * layer.n_out,
                                    np.tile(np.arange(layer.n_out), n), *a, Zr)
            Z = Zr.reshape(n, layer.n_out)
        elif act[0] == "ragged":
            _, xs, xe, xi, xv = act
            with one_thread_if_small(len(xv) * layer.n_out):
                KN.fwd_dense_ragged_in(layer.P, layer.b, xs, xe, xi, xv, Z)
        elif layer.lsh:
            KN.fwd_rows_dense_in(layer.P, layer.b, act[1], Z)
        elif train:
            _blocked_product(act[1], layer.P, Z, self._gemm_helpers)  # BLAS
            Z += layer.b
        else:  # per sample: a prediction never depends on the rest of the batch
            KN.fwd_cols_dense_in(layer.P, layer.b, act[1], Z)
        if train:
            self.times["forward"] += time.perf_counter() - t0
        return ("full", Z)

    @staticmethod
    def _relu(out):
        if out[0] == "active":
            _, s, e, ind, z, _, _, _, _ = out
            return ("ragged", s, e, ind, np.maximum(z, 0))
        return ("dense", np.maximum(out[1], 0))

    def forward(self, X, *, train=False, forced=None, output_lsh=False, seeds=None, rows=None,
                prepared=None):
        """Run the network on a batch; returns the per-layer ``(input, output)`` list.

        ``rows``: training row numbers of the batch (see :meth:`set_input_cache`).
        ``prepared``: the batch as :meth:`epoch_batches` yields it (``X`` is
        then not read).
        """
        sel0 = inv0 = None
        if prepared is None:
            act = as_activation(X, ragged_if_sparse=self.layers[0].lsh)
        else:
            act, sel0, inv0, acct = prepared
            if sel0 is not None:
                self._account(acct)
        cache = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            use_lsh = layer.lsh and (i < last or train or output_lsh)
            out = self._forward_layer(layer, act, use_lsh, train,
                                      forced if i == last else None,
                                      None if seeds is None else seeds[i],
                                      rows if i == 0 and train else None,
                                      *((sel0, inv0) if i == 0 else ()))
            cache.append((act, out))
            act = self._relu(out)
        return cache

    def scores(self, X, output_lsh=False):
        """Output logits: ``(n, n_out)`` array, or the active ragged set."""
        out = self.forward(X, train=False, output_lsh=output_lsh)[-1][1]
        return out

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def _adam_lr(self):
        t = self.t
        return float(self.learning_rate * math.sqrt(1 - _B2**t) / (1 - _B1**t))

    def _lr_at(self, u):
        """Adam's bias-corrected step size at the steps ``u``."""
        u = np.maximum(u, 1.0)  # F[t] reads steps t + 1 on: step 0 is never used
        return self.learning_rate * np.sqrt(1 - _B2**u) / (1 - _B1**u)

    def _catch_up_table(self, t):
        """:func:`~skmach._kernels._lsh_train.catch_up_table` up to at least
        step ``t`` (grown by doubling; rebuilt if the learning rate changed)."""
        tab = self.__dict__.get("_cu_table")
        if tab is None or tab[0] != self.learning_rate or len(tab[1]) <= t:
            t_max = max(2 * t, t + 1024)
            tab = (self.learning_rate, KN.catch_up_table(self._lr_at, t_max, _B1, _B2))
            self._cu_table = tab
        return tab[1]

    #: threads helping with the blocks of dense products, ``(pool, n)``
    #: (:func:`_blocked_product`), inside :meth:`gemm_threads`
    _gemm_helpers = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_cu_table", None)  # derived from the learning rate
        state.pop("_gemm_helpers", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        for layer in self.layers:
            if layer.lsh and getattr(layer, "_no_last_step", False):
                # pickled before the momentum catch-up: every row is up to date
                layer.last_step[:] = self.t
                del layer._no_last_step

    def _draw_seeds(self, n):
        """A batch's random seeds: one per sample and LSH layer."""
        return [self.rng.integers(1, 2**63, n, dtype=np.uint64) if la.lsh else None
                for la in self.layers]

    def train_batch(self, X, pptr, plab, rows=None, seeds=None, prepared=None):
        """One Adam step on a minibatch; returns the mean data loss.

        ``plab[pptr[i]:pptr[i + 1]]`` are the true labels of sample ``i``: its
        target is uniform over them, and in an LSH output layer their neurons
        are always active. ``rows``: the batch's row numbers in the training
        set, when the first layer's query buckets are cached
        (:meth:`set_input_cache`). ``seeds`` and ``prepared``: as
        :meth:`epoch_batches` yields them (``X`` is then not read); without
        them the seeds are drawn here.
        """
        n = X.shape[0] if prepared is None else _n_samples(prepared.act)
        if seeds is None:
            seeds = self._draw_seeds(n)
        cache = self.forward(X, train=True, forced=(pptr, plab), seeds=seeds, rows=rows,
                             prepared=prepared)
        t0 = time.perf_counter()
        out = cache[-1][1]
        loss = np.zeros(n, dtype=np.float64)
        if out[0] == "active":
            _, s, e, ind, z, fm, _, pad_start, _ = out
            grad = np.zeros(len(z), dtype=np.float32)
            logw = np.zeros(n)
            if self.padding_weight == "importance":
                # a padding neuron is a uniform draw among the neurons not
                # selected: it stands for (not selected) / (padding) of them
                rest = np.maximum(self.layers[-1].n_out - (pad_start - s), 1)
                logw = np.log(rest / np.maximum(e - pad_start, 1))
            with one_thread_if_small(len(z)):
                KN.softmax_ce_active(s, e, z, fm, pad_start, logw, 1.0 / n, grad, loss)
            top = self.layers[-1]
            if top.neg_ids is not None:
                KT.record_hard_negatives(s, e, ind, z, fm, pptr, plab, _HARD_PER_SAMPLE,
                                         top.neg_ids, top.neg_cnt)
                # a pass over the active slots, each report a pass over a list (at most)
                self.flops += len(z) + n * _HARD_PER_SAMPLE * top.neg_ids.shape[1]
        else:
            grad = np.empty_like(out[1])
            with one_thread_if_small(out[1].size):
                KN.softmax_ce_dense(out[1], pptr, plab, 1.0 / n, grad, loss)
        self.times["loss"] += time.perf_counter() - t0
        bcache = cache
        if out[0] == "active" and self.gradient_threshold > 0:
            # the outputs whose gradient is negligible are left out of the
            # backward pass and the update (gradient_threshold; the loss and
            # the hard negatives saw them all)
            t0 = time.perf_counter()
            s2, e2, ind2, grad = KN.drop_small_slots(
                s, e, ind, grad, np.float32(self.gradient_threshold / n))
            inv = KN.inverse_map(s2, e2, ind2, self.layers[-1].n_out)
            kept = ("active", s2, e2, ind2, None, None, None, None, inv)
            bcache = cache[:-1] + [(cache[-1][0], kept)]
            self._kept = (e2 - s2).astype(np.float64)  # per sample
            self.times["backward"] += time.perf_counter() - t0
        self.t += 1
        lr_t = self._adam_lr()
        alpha = self.alpha / n
        for i in range(len(self.layers) - 1, -1, -1):
            # an LSH layer's slots by neuron are the next layer's input by column
            prev = cache[i - 1][1] if i > 0 else None
            in_inv = prev[8] if prev is not None and prev[0] == "active" else None
            grad = self._backward_layer(self.layers[i], bcache[i], grad, i > 0, alpha, lr_t,
                                        in_inv)
        self._count(cache)
        self.n_batches += 1
        self.n_samples_seen += n
        self._maybe_rebuild()
        return float(loss.sum() / n)

    def flush_momentum(self):
        """Apply the momentum steps every LSH layer's rows have pending.

        Rows skipped by the recent batches are caught up when next active
        (:func:`~skmach._kernels._lsh_train.adam_catch_up`); this brings every
        row to the current step, as dense Adam would have it: at the end of
        an epoch, before the weights are used to predict.

        The tables are left as the rebuild schedule made them: the network
        learns with the tables it retrieves from, and rebuilding them here
        (so that prediction retrieves with the caught-up weights) lowered
        test accuracy (Convex 0.672 -> 0.655 and 0.705 -> 0.671 over two
        seeds, MNIST 0.955 -> 0.950).
        """
        if self.t == 0:
            return
        t0 = time.perf_counter()
        for layer in self.layers:
            if layer.lsh:
                rows = np.arange(layer.n_out, dtype=np.int64)
                KN.adam_catch_up(layer.P, layer.M, layer.V, layer.b, layer.Mb, layer.Vb,
                                 rows, layer.last_step, self.t + 1,
                                 self._catch_up_table(self.t + 1), _B1, _B2, _EPS)
                layer.last_step[:] = self.t
                layer.dirty[:] = True
                self.flops += _CATCH_UP_COST * layer.n_out * (layer.n_in + 1)
        self.times["update"] += time.perf_counter() - t0

    def _backward_layer(self, layer, cached, grad, need_dx, alpha, lr_t, in_inv=None):
        """Gradient step of ``layer``; returns the gradient of its input (or
        None). ``in_inv``: its ragged input's entries grouped by column, when
        known (an LSH layer's slots grouped by neuron, from its forward)."""
        act, out = cached
        nc = self.n_chunks
        t0 = time.perf_counter()
        dx = None
        if out[0] == "active":
            _, s, e, ind, _, _, _, _, inv = out
            if need_dx:
                if act[0] == "dense":
                    dx = np.empty_like(act[1])
                    with one_thread_if_small(len(ind) * layer.n_in):
                        KN.dx_active_dense(layer.P, s, e, ind, grad, dx)
                else:
                    _, xs, xe, xi, xv = act
                    dx = np.empty_like(xv)
                    KN.dx_active_ragged(layer.P, s, e, ind, grad, xs, xe, xi, dx)
            t1 = time.perf_counter()
            rows, rptr, rpos, rsam = inv  # from the forward pass
            if layer.lsh:
                layer.dirty[rows] = True
            # dense Adam: a neuron skipped by the batches since its last step
            # moves on its momentum (caught up now, in the same pass)
            last = layer.last_step if layer.lsh else _NO_ROWS
            if layer.lsh:
                self.flops += _CATCH_UP_COST * len(rows) * (layer.n_in + 1)
            F = self._catch_up_table(self.t) if layer.lsh else _NO_STEPS
            small = one_thread_if_small((len(rows) + len(rpos)) * layer.n_in)
            if act[0] == "dense":
                with small:
                    KN.adam_rows_dense_src(layer.P, layer.M, layer.V, layer.b, layer.Mb,
                                           layer.Vb, rows, rptr, rpos, rsam, grad, act[1],
                                           alpha, lr_t, _B1, _B2, _EPS, nc, last, self.t, F)
            else:
                _, xs, xe, xi, xv = act
                with small:
                    if layer.lsh:
                        KN.adam_catch_up(layer.P, layer.M, layer.V, layer.b, layer.Mb,
                                         layer.Vb, rows, last, self.t, F, _B1, _B2, _EPS)
                    KN.adam_rows_ragged_src(layer.P, layer.M, layer.V, layer.b, layer.Mb,
                                            layer.Vb, rows, rptr, rpos, rsam, grad, xs, xe,
                                            xi, xv, alpha, lr_t, _B1, _B2, _EPS, nc)
            self._updated += len(rows) * (layer.n_in + 1)
        else:
            gb = grad.sum(axis=0, dtype=np.float64).astype(np.float32)[None, :]
            if act[0] == "dense":
                X = act[1]
                if need_dx:
                    dx = _blocked_product(grad, layer.P.T,
                                          np.empty((len(grad), layer.n_in), np.float32),
                                          self._gemm_helpers)
                G = _blocked_product(X.T, grad, np.empty(layer.P.shape, np.float32),
                                     self._gemm_helpers)
                t1 = time.perf_counter()
                # a memory-bound step per weight: _SCALAR_STEPS / 2 vectorised steps
                with one_thread_if_small(_SCALAR_STEPS // 2 * layer.P.size):
                    KN.adam_dense(layer.P, G, layer.M, layer.V, alpha, lr_t, _B1, _B2, _EPS)
                self._updated += layer.P.size
            else:
                _, xs, xe, xi, xv = act
                if need_dx:
                    dx = np.empty_like(xv)
                    with one_thread_if_small(len(xv) * layer.n_out):
                        KN.dx_dense_ragged(layer.P, grad, xs, xe, xi, dx)
                t1 = time.perf_counter()
                if in_inv is None:
                    in_inv = KN.inverse_map(xs, xe, xi, layer.n_in)
                rows, rptr, rpos, rsam = in_inv
                self._cols_seen = len(rows)  # for _count: the input columns seen
                empty = np.zeros(0, dtype=np.float32)
                with one_thread_if_small((len(rows) + len(rpos)) * layer.n_out):
                    KN.adam_rows_dense_src(layer.P, layer.M, layer.V, empty, empty, empty,
                                           rows, rptr, rpos, rsam, xv, grad, alpha, lr_t,
                                           _B1, _B2, _EPS, nc, _NO_ROWS, self.t, _NO_STEPS)
                self._updated += len(rows) * layer.n_out
            with one_thread_if_small(layer.n_out):
                KN.adam_dense(layer.b[None, :], gb, layer.Mb[None, :], layer.Vb[None, :], 0.0,
                              lr_t, _B1, _B2, _EPS)
            self._updated += layer.n_out
        t2 = time.perf_counter()
        self.times["backward"] += t1 - t0
        self.times["update"] += t2 - t1
        if not need_dx:
            return None
        # through the ReLU of the previous layer
        if act[0] == "dense":
            dx *= act[1] > 0
        else:
            dx *= act[4] > 0
        return dx

    _updated = 0.0
    #: per sample, the output layer's slots left in its backward pass
    #: (gradient_threshold), for _count
    _kept = None
    gradient_threshold = 0.0  # networks pickled before it existed
    _cols_seen = 0  # input columns of a ragged batch, counted by the backward pass

    def uses_blas(self, sparse_input):
        """Whether training multiplies dense matrices with BLAS: a dense layer
        over a dense input (the network's, unless ``sparse_input``, or a dense
        layer's output). LSH layers, and dense layers over a sparse input or
        over an LSH layer's active set, run in the compiled kernels."""
        dense_in = not sparse_input
        for layer in self.layers:
            if not layer.lsh and dense_in:
                return True
            dense_in = not layer.lsh
        return False

    @contextmanager
    def gemm_threads(self, n, sparse_input):
        """Within the block, ``n - 1`` threads help the calling one with the
        blocks of training's large dense products (:func:`_blocked_product`):
        at ``n >= 2`` where training has such products (:meth:`uses_blas`);
        otherwise nothing."""
        if n < 2 or not self.uses_blas(sparse_input):
            yield
            return
        with ThreadPoolExecutor(n - 1, thread_name_prefix="skmach-gemm") as pool:
            self._gemm_helpers = (pool, n - 1)
            try:
                yield
            finally:
                self._gemm_helpers = None

    def penalty(self):
        """``0.5 * sum ||W||^2`` over the layers (the L2 term before scaling)."""
        return 0.5 * sum(float(np.dot(la.P.ravel(), la.P.ravel())) for la in self.layers)

    # ------------------------------------------------------------------ #
    # Accounting
    # ------------------------------------------------------------------ #
    def _count(self, cache):
        """Add this batch's work (multiply-add equivalents), sparse and dense."""
        for i, (layer, (act, out)) in enumerate(zip(self.layers, cache)):
            ragged = act[0] == "ragged"
            if ragged:
                n = len(act[1])
                in_cnt = (act[2] - act[1]).astype(np.float64)
            else:  # every sample has n_in inputs: scalars (this runs per batch)
                n = act[1].shape[0]
                in_cnt = float(layer.n_in)
            if i == 0 and ragged:  # lazy Adam on the columns seen
                dense_in = float(np.sum(in_cnt))
                # counted by the backward pass of a dense layer (np.unique
                # here took ~1 ms per debian batch); counted here otherwise
                n_rows = self._cols_seen if out[0] == "full" else len(np.unique(act[3]))
            else:
                dense_in = n * float(layer.n_in)
                n_rows = layer.n_in
            back = 2.0 if i else 1.0  # weight gradient (+ input gradient past layer 0)
            if out[0] == "active":
                _, s, e, _, _, _, examined, _, _ = out
                out_cnt = (e - s).astype(np.float64)
                fam = layer.family
                cost = fam.cost(in_cnt + 1)  # +1: the bias coordinate
                h = float(np.sum(cost)) if ragged else n * float(cost)
                self.hash_flops += h
                # retrieval: entries examined, plus a pass over the candidates
                ex = float(examined.sum())
                self.flops += h + 2.0 * ex
                self.examined_sum[i] += ex
                n_active = float(np.sum(out_cnt))
                pairs = float(np.sum(in_cnt * out_cnt)) if ragged else in_cnt * n_active
                # the backward pass of the slots kept (gradient_threshold)
                kept = pairs
                if self._kept is not None and i == len(cache) - 1:
                    kept = (float(np.sum(in_cnt * self._kept)) if ragged
                            else in_cnt * float(np.sum(self._kept)))
            else:
                n_active = n * float(layer.n_out)
                self.examined_sum[i] += n_active
                pairs = float(np.sum(in_cnt)) * layer.n_out if ragged else n_active * in_cnt
                kept = pairs
            self.flops += pairs + back * kept
            self.dense_flops += (1.0 + back) * dense_in * layer.n_out
            self.dense_flops += _ADAM_COST * (n_rows + 1) * layer.n_out
            self.active_sum[i] += n_active / layer.n_out
        self.flops += _ADAM_COST * self._updated
        self._updated = 0.0
        self._kept = None

    def _maybe_rebuild(self):
        if self.n_batches < self.next_rebuild or not any(la.lsh for la in self.layers):
            return
        t0 = time.perf_counter()
        for layer in self.layers:
            if layer.lsh:
                rows = np.flatnonzero(layer.dirty)
                if len(rows):
                    layer.codes[rows] = self._hash_neurons(layer, rows)
                    self._build(layer)
                    if getattr(layer, "sketch", None) is not None:
                        self._refresh_sketch(layer, rows)
                cost = len(rows) * layer.family.cost(None) + layer.n_out * layer.family.n_tables
                self.hash_flops += cost
                self.flops += cost
                layer.dirty[:] = False
        self.rebuild_batches.append(self.n_batches)
        self.n_rebuilds += 1
        interval = self.rebuild_interval * math.exp(self.rebuild_decay * self.n_rebuilds)
        self.next_rebuild = self.n_batches + max(1, int(math.ceil(interval)))
        self.times["rebuild"] += time.perf_counter() - t0
