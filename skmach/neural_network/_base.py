"""The LSH-sparse multi-layer network (NumPy), independent of the estimator API.

:class:`SparseNetwork` holds the weights, the hash tables of the LSH-enabled
layers, the Adam optimiser and the cost counters. With no LSH layer (or a
budget covering every neuron) the very same code trains the plain dense
network, which is the reference of every comparison.
"""

import math

import numpy as np
import scipy.sparse as sp

from .._hashing import LSHTables, make_hash_family
from .._optim import AdamOptimizer
from ._sparse_layers import (
    SparseAct,
    csr_to_sparse_act,
    dense_backward,
    dense_forward,
    lsh_backward,
    lsh_forward,
    select_active,
    softmax_cross_entropy,
)


class _Layer:
    def __init__(self, n_in, n_out, lsh, budget, rng, dtype, transpose_storage):
        bound = math.sqrt(6.0 / (n_in + n_out))
        if transpose_storage:
            # Input layer of a dense first layer: stored (n_in, n_out) so that
            # lazy Adam updates of the input columns seen in a sparse batch
            # are contiguous rows of W.T.
            self.WT = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
            self.W = self.WT.T
        else:
            self.W = rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype)
            self.WT = None
        self.b = rng.uniform(-bound, bound, n_out).astype(dtype)
        self.n_in, self.n_out = n_in, n_out
        self.lsh = bool(lsh) and budget < n_out
        self.budget = int(min(budget, n_out))
        self.tables = None
        self.dirty = None
        self.priority = None


class SparseNetwork:
    """ReLU network whose LSH layers compute only retrieved neurons.

    Parameters
    ----------
    sizes : list of int
        ``[n_features, hidden..., n_outputs]``.
    lsh : list of bool
        One per layer (hidden layers then output layer).
    budgets : list of int
        Active neurons per sample for each layer (ignored for non-LSH layers).
    hash_family, n_tables, n_bits, selection, threshold, min_active,
    bucket_size, rebuild_interval, rebuild_decay, alpha, learning_rate :
        See :class:`~skmach.neural_network.LSHSparseMLPClassifier`.
    rng : numpy.random.Generator
    dtype : numpy dtype
    """

    def __init__(self, sizes, lsh, budgets, *, hash_family="dwta", n_tables=50, n_bits=6,
                 selection="topk", threshold=2, min_active=1.0, bucket_size=128,
                 rebuild_interval=50, rebuild_decay=0.1, alpha=1e-4, learning_rate=1e-3,
                 rng=None, dtype=np.float32):
        self.rng = np.random.default_rng(rng)
        self.dtype = dtype
        self.selection = selection
        self.threshold = threshold
        self.min_active = float(min_active)
        self.rebuild_interval = rebuild_interval
        self.rebuild_decay = rebuild_decay
        self.alpha = alpha
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layer = _Layer(n_in, n_out, lsh[i], budgets[i], self.rng, dtype,
                           transpose_storage=(i == 0 and not (lsh[i] and budgets[i] < n_out)))
            if layer.lsh:
                # Neurons are hashed as [w, b] and inputs as [x, 1], so that
                # the hashed similarity tracks the pre-activation w.x + b.
                fam = make_hash_family(hash_family, n_in + 1, n_bits, n_tables, self.rng)
                layer.tables = LSHTables(fam, bucket_size=bucket_size)
                layer.tables.build(self._neuron_vectors(layer, slice(None)))
                layer.dirty = np.zeros(n_out, dtype=bool)
                layer.priority = self.rng.random(n_out)
            self.layers.append(layer)
        params = []
        for layer in self.layers:
            params += [layer.WT if layer.WT is not None else layer.W, layer.b]
        self.optimizer = AdamOptimizer(params, learning_rate=learning_rate)
        # Schedule and accounting.
        self.n_batches = 0
        self.n_rebuilds = 0
        self.next_rebuild = int(rebuild_interval)
        self.rebuild_batches = []
        self.n_samples_seen = 0
        self.flops = 0.0  # multiply-adds of training (forward + backward + hashing)
        self.dense_flops = 0.0  # same batches through the dense network
        self.hash_flops = 0.0
        self.active_sum = np.zeros(len(self.layers))

    # ------------------------------------------------------------------ #
    def _n_pad(self, layer):
        return int(math.ceil(self.min_active * layer.budget))

    @staticmethod
    def _neuron_vectors(layer, rows):
        return np.hstack([layer.W[rows], layer.b[rows][:, None]])

    @staticmethod
    def _query_vectors(layer, x):
        if isinstance(x, SparseAct):
            x = x.to_csr(layer.n_in)
        ones = np.ones((x.shape[0], 1), dtype=x.dtype)
        if sp.issparse(x):
            return sp.hstack([x, sp.csr_matrix(ones)], format="csr")
        return np.hstack([x, ones])

    def _active_set(self, layer, x, rng, forced_rows=None, forced_neurons=None):
        fam = layer.tables.family
        codes = fam.hash(self._query_vectors(layer, x))
        rows, neurons = layer.tables.query(codes, rng)
        return select_active(
            rows, neurons, codes.shape[0], layer.n_out, layer.budget,
            selection=self.selection, threshold=self.threshold,
            n_pad=self._n_pad(layer), rng=rng, priority=layer.priority,
            forced_rows=forced_rows, forced_neurons=forced_neurons,
        )

    @staticmethod
    def _in_count(x, n_in):
        if isinstance(x, SparseAct):
            return x.count.astype(np.float64)
        if sp.issparse(x):
            return np.diff(x.indptr).astype(np.float64)
        return np.full(x.shape[0], float(n_in))

    def forward(self, X, *, train=False, rng=None, forced=None, output_lsh=False):
        """Run the network on a batch.

        Parameters
        ----------
        X : ndarray or CSR matrix (n, n_features)
        train : bool
            Keep what the backward pass needs and count costs.
        rng : numpy.random.Generator or None
            Random tie-breaks/padding (training); None is deterministic.
        forced : (rows, neurons) or None
            Output neurons that must be active (true labels, training).
        output_lsh : bool
            Score the output layer through its index (when it has one).

        Returns
        -------
        out : ndarray (n, n_outputs) or (scores, idx, mask, forced_mask)
            Full scores, or scores of the active output neurons only.
        cache : list
        """
        x = X
        if sp.issparse(x) and self.layers[0].lsh:
            x = csr_to_sparse_act(x)
        cache = []
        n_layers = len(self.layers)
        for i, layer in enumerate(self.layers):
            last = i == n_layers - 1
            use_lsh = layer.lsh and (not last or train or output_lsh)
            if use_lsh:
                f_rows, f_cols = forced if (last and forced is not None) else (None, None)
                idx, mask, fmask = self._active_set(layer, x, rng, f_rows, f_cols)
                z, Wg = lsh_forward(layer.W, layer.b, x, idx, mask)
                cache.append((x, z, idx, mask, Wg))
                if last:
                    return (z, idx, mask, fmask), cache
                a = SparseAct(idx, np.maximum(z, 0), mask)
            else:
                z = dense_forward(layer.W, layer.b, x)
                cache.append((x, z, None, None, None))
                if last:
                    return z, cache
                a = np.maximum(z, 0)
            x = a
        raise AssertionError("unreachable")

    def _count(self, cache, X):
        """Add this batch's multiply-adds (sparse and dense reference)."""
        n = X.shape[0]
        nnz0 = np.diff(X.indptr).astype(np.float64) if sp.issparse(X) else None
        for i, (layer, (x, z, idx, mask, _)) in enumerate(zip(self.layers, cache)):
            in_cnt = self._in_count(x, layer.n_in) if i else (
                nnz0 if nnz0 is not None else np.full(n, float(layer.n_in)))
            out_cnt = mask.sum(axis=1) if idx is not None else np.full(n, float(layer.n_out))
            back = 2.0 if i else 1.0  # weight gradient (+ input gradient past layer 0)
            self.flops += (1.0 + back) * float(np.sum(in_cnt * out_cnt))
            dense_in = nnz0 if (i == 0 and nnz0 is not None) else np.full(n, float(layer.n_in))
            self.dense_flops += (1.0 + back) * float(np.sum(dense_in * layer.n_out))
            self.active_sum[i] += float(np.sum(out_cnt)) / layer.n_out
            if idx is not None:
                fam = layer.tables.family
                if isinstance(x, SparseAct) or sp.issparse(x):
                    h = float(np.sum(fam.cost(in_cnt + 1)))  # +1: the bias coordinate
                else:
                    h = n * fam.cost(None)
                self.hash_flops += h
                self.flops += h

    def train_batch(self, X, pos_rows, pos_labels):
        """One Adam step on a minibatch; returns the mean loss.

        ``(pos_rows, pos_labels)`` lists the true (sample, label) pairs: the
        target of a sample is uniform over its labels (one-hot for
        multi-class), and in an LSH output layer those neurons are always
        active.
        """
        n = X.shape[0]
        rng = self.rng
        out, cache = self.forward(X, train=True, rng=rng, forced=(pos_rows, pos_labels))
        if self.layers[-1].lsh:
            z, idx, mask, fmask = out
            T = fmask.astype(self.dtype)
            loss, dz = softmax_cross_entropy(z, T / np.maximum(T.sum(1, keepdims=True), 1), mask)
        else:
            z = out
            T = np.zeros(z.shape, dtype=self.dtype)
            T[pos_rows, pos_labels] = 1
            loss, dz = softmax_cross_entropy(z, T / np.maximum(T.sum(1, keepdims=True), 1))
        dz /= n
        loss /= n
        dz = dz.astype(self.dtype, copy=False)
        updates = []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            x, z, idx, mask, Wg = cache[i]
            need_dx = i > 0
            if idx is not None:
                rows, dW, db, dx = lsh_backward(layer.W, x, idx, mask, dz, Wg, need_dx)
                if self.alpha:
                    dW += (self.alpha / n) * layer.W[rows]
                updates.append((2 * i, rows, dW))
                updates.append((2 * i + 1, rows, db))
                layer.dirty[rows] = True
            else:
                dW, db, dx = dense_backward(layer.W, x, dz, need_dx)
                if isinstance(dW, tuple):  # CSR input: lazy update of the seen columns
                    cols, dWT = dW
                    if self.alpha:
                        dWT += (self.alpha / n) * layer.WT[cols]
                    updates.append((2 * i, cols, dWT))
                else:
                    if self.alpha:
                        dW += (self.alpha / n) * layer.W
                    updates.append((2 * i, slice(None), dW.T if layer.WT is not None else dW))
                updates.append((2 * i + 1, slice(None), db))
            if need_dx:
                prev_z = cache[i - 1][1]
                dz = (dx * (prev_z > 0)).astype(self.dtype, copy=False)
        if self.alpha:
            for layer in self.layers:
                loss += 0.5 * self.alpha / n * float(np.sum(layer.W * layer.W))
        self._count(cache, X)
        for j, rows, g in sorted(updates, key=lambda u: u[0]):
            self.optimizer.update_rows(j, rows, g.astype(self.dtype, copy=False))
        self.n_batches += 1
        self.n_samples_seen += n
        self._maybe_rebuild()
        return loss

    def _maybe_rebuild(self):
        if self.n_batches < self.next_rebuild:
            return
        for layer in self.layers:
            if layer.lsh:
                rows = np.flatnonzero(layer.dirty)
                before = layer.tables.n_hashed_
                layer.tables.update(rows, self._neuron_vectors(layer, rows))
                cost = (layer.tables.n_hashed_ - before) * layer.tables.family.cost(None)
                self.hash_flops += cost
                self.flops += cost
                layer.dirty[:] = False
        self.rebuild_batches.append(self.n_batches)
        self.n_rebuilds += 1
        interval = self.rebuild_interval * math.exp(self.rebuild_decay * self.n_rebuilds)
        self.next_rebuild = self.n_batches + max(1, int(math.ceil(interval)))
