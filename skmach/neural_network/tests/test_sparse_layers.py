import math

import numpy as np
import pytest
import scipy.sparse as sp

from skmach.neural_network import _sparse_layers as K
from skmach.neural_network._base import SparseNetwork
from skmach.neural_network._sparse_layers import SparseAct


def _fd(f, A, eps=1e-6):
    g = np.zeros_like(A)
    it = np.nditer(A, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = A[i]
        A[i] = old + eps
        fp = f()
        A[i] = old - eps
        fm = f()
        A[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def _active(rng, n, n_out, w):
    idx = np.stack([rng.choice(n_out, w, replace=False) for _ in range(n)])
    mask = rng.random((n, w)) < 0.8
    return idx, mask


@pytest.mark.parametrize("sparse_input", [False, True])
def test_lsh_layer_gradients_match_finite_differences(sparse_input):
    rng = np.random.default_rng(0)
    n, n_in, n_out, w = 3, 7, 9, 4
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    idx, mask = _active(rng, n, n_out, w)
    G = rng.normal(size=(n, w))
    if sparse_input:
        xi, xm = _active(rng, n, n_in, 3)
        x = SparseAct(xi, rng.normal(size=(n, 3)) * xm, xm)
        xv = x.val
    else:
        x = rng.normal(size=(n, n_in))
        xv = x

    def loss():
        z, _ = K.lsh_forward(W, b, x, idx, mask)
        return float(np.sum(G * z))

    z, Wg = K.lsh_forward(W, b, x, idx, mask)
    rows, dW, db, dx = K.lsh_backward(W, x, idx, mask, G, Wg, need_dx=True)
    full_dW = np.zeros_like(W)
    full_dW[rows] = dW
    full_db = np.zeros_like(b)
    full_db[rows] = db
    np.testing.assert_allclose(full_dW, _fd(loss, W), atol=1e-6)
    np.testing.assert_allclose(full_db, _fd(loss, b), atol=1e-6)
    # (padding slots of a sparse input are not neurons: no gradient there)
    m = x.mask if sparse_input else 1
    np.testing.assert_allclose(dx, _fd(loss, xv) * m, atol=1e-6)
    # rows outside the active sets get no gradient
    assert set(rows) == set(idx[mask])


def test_dense_layer_gradients_with_sparse_act_input():
    rng = np.random.default_rng(1)
    n, n_in, n_out = 3, 8, 5
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    xi, xm = _active(rng, n, n_in, 4)
    x = SparseAct(xi, rng.normal(size=(n, 4)) * xm, xm)
    G = rng.normal(size=(n, n_out))

    def loss():
        return float(np.sum(G * K.dense_forward(W, b, x)))

    dW, db, dx = K.dense_backward(W, x, G, need_dx=True)
    np.testing.assert_allclose(dW, _fd(loss, W), atol=1e-6)
    np.testing.assert_allclose(db, _fd(loss, b), atol=1e-6)
    np.testing.assert_allclose(dx, _fd(loss, x.val) * x.mask, atol=1e-6)
    # CSR input: only the columns present, transposed
    Xc = sp.random(n, n_in, density=0.3, random_state=0, format="csr")
    (cols, dWT), _, _ = K.dense_backward(W, Xc, G, need_dx=False)
    np.testing.assert_allclose(dWT, (G.T @ Xc.toarray()).T[cols])
    np.testing.assert_array_equal(cols, np.unique(Xc.indices))


def test_masked_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4, 6))
    mask = rng.random((4, 6)) < 0.7
    mask[:, 0] = True
    T = np.zeros((4, 6))
    T[:, 0] = 1
    T[3] = 0  # row without labels: no loss, no gradient

    def loss():
        return K.softmax_cross_entropy(z, T, mask)[0]

    _, dz = K.softmax_cross_entropy(z, T, mask)
    np.testing.assert_allclose(dz, _fd(loss, z), atol=1e-6)
    assert np.all(dz[~mask] == 0) and np.all(dz[3] == 0)


def test_csr_to_sparse_act_roundtrip():
    X = sp.random(5, 12, density=0.3, random_state=0, format="csr")
    a = K.csr_to_sparse_act(X)
    np.testing.assert_allclose(a.to_dense(12), X.toarray())
    np.testing.assert_allclose(a.to_csr(12).toarray(), X.toarray())


@pytest.mark.parametrize("selection", ["topk", "union", "sample", "threshold"])
@pytest.mark.parametrize("dense_path", [True, False])
def test_select_active_budget_forced_and_padding(selection, dense_path, monkeypatch):
    if not dense_path:
        monkeypatch.setattr(K, "_DENSE_SELECT_MAX", 0)
    rng = np.random.default_rng(0)
    n, N, budget = 6, 40, 5
    q_rows = np.repeat(np.arange(n), 12)
    q_neurons = rng.integers(0, 10, n * 12)  # collisions among neurons 0..9 only
    q_rows = q_rows[: n * 12 - 12]  # last sample retrieves nothing
    q_neurons = q_neurons[: n * 12 - 12]
    forced_rows, forced = np.arange(n), np.full(n, 39)
    idx, mask, fmask = K.select_active(
        q_rows, q_neurons, n, N, budget, selection=selection, threshold=2, n_pad=budget,
        rng=rng, forced_rows=forced_rows, forced_neurons=forced)
    for i in range(n):
        act = idx[i][mask[i]]
        assert len(set(act)) == len(act) <= budget
        assert 39 in act and fmask[i].sum() == 1 and idx[i][fmask[i]][0] == 39
        assert len(act) == budget  # padded up to the budget
    # the sample that retrieved nothing is padded with random neurons
    assert mask[-1].sum() == budget
    if selection == "topk":
        counts = np.bincount(q_rows * N + q_neurons, minlength=n * N).reshape(n, N)
        for i in range(n - 1):
            act = [j for j in idx[i][mask[i]] if j != 39]
            # every selected neuron beats every unselected one on collisions
            others = np.setdiff1d(np.arange(N), act)
            assert counts[i, act].min() >= counts[i, others].max()


@pytest.mark.parametrize("dense_path", [True, False])
def test_select_active_sample_is_proportional_to_collisions(dense_path, monkeypatch):
    if not dense_path:
        monkeypatch.setattr(K, "_DENSE_SELECT_MAX", 0)
    n, N = 4000, 8
    # every sample: neuron 0 collides 3 times, neuron 1 once
    q_rows = np.repeat(np.arange(n), 4)
    q_neurons = np.tile([0, 0, 0, 1], n)
    rng = np.random.default_rng(0)
    idx, mask, _ = K.select_active(q_rows, q_neurons, n, N, 1, selection="sample",
                                   n_pad=1, rng=rng)
    share = np.mean(idx[:, 0][mask[:, 0]] == 0)
    assert mask[:, 0].all() and abs(share - 0.75) < 0.03
    # at prediction (no rng) it is topk
    idx, mask, _ = K.select_active(q_rows[:8], q_neurons[:8], 2, N, 1, selection="sample",
                                   n_pad=1, rng=None, priority=rng.random(N))
    assert (idx[:, 0] == 0).all()


def test_select_active_paths_agree_at_prediction(monkeypatch):
    rng = np.random.default_rng(0)
    n, N = 5, 30
    q_rows = rng.integers(0, n, 80)
    q_neurons = rng.integers(0, N, 80)
    prio = rng.random(N)
    kw = dict(selection="topk", n_pad=3, rng=None, priority=prio)
    a = K.select_active(q_rows, q_neurons, n, N, 6, **kw)
    monkeypatch.setattr(K, "_DENSE_SELECT_MAX", 0)
    b = K.select_active(q_rows, q_neurons, n, N, 6, **kw)
    for i in range(n):
        assert set(a[0][i][a[1][i]]) == set(b[0][i][b[1][i]])


def test_only_active_rows_change_in_an_update():
    rng = np.random.default_rng(0)
    X = rng.random((16, 12))
    y = rng.integers(0, 3, 16)
    net = SparseNetwork([12, 200, 3], [True, False], [10, 3], n_tables=8, n_bits=2,
                        rng=0)
    W0, b0 = net.layers[0].W.copy(), net.layers[0].b.copy()
    net.train_batch(X, np.arange(17), y)
    changed = np.flatnonzero((net.layers[0].W != W0).any(1) | (net.layers[0].b != b0))
    dirty = np.flatnonzero(net.layers[0].dirty)
    assert set(changed) <= set(dirty)
    assert len(dirty) <= 16 * 10 < 200
    # the dense output layer moved everywhere
    assert net.layers[1].W.shape == (3, 200)


def test_rebuild_schedule_grows():
    rng = np.random.default_rng(0)
    X = rng.random((8, 5))
    net = SparseNetwork([5, 40, 2], [True, False], [4, 2], n_tables=4, n_bits=2,
                        rebuild_interval=2, rebuild_decay=0.5, rng=0)
    for _ in range(60):
        net.train_batch(X, np.arange(9), np.arange(8) % 2)
    gaps = np.diff([0] + net.rebuild_batches)
    assert len(gaps) >= 4
    assert np.all(np.diff(gaps) >= 0) and gaps[-1] > gaps[0]
    # rebuilds re-hash only neurons updated since the previous rebuild
    assert net.layers[0].n_hashed <= 40 * (1 + len(gaps))


def _small_data(sparse_input):
    """40 rows of 12 features, about half of them zero (CSR where
    ``sparse_input``), and 3 classes."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 12)) * (rng.random((40, 12)) < 0.5)
    if sparse_input:
        X = sp.csr_matrix(X)
    return X, rng.integers(0, 3, 40)


def _train_epochs(net, X, y, prefetch, n_epochs=3, bs=16):
    """Train ``net`` on ``X, y``: each batch through :meth:`train_batch`
    alone (``prefetch=None``), or as :meth:`epoch_batches` prepares them."""
    n = X.shape[0]
    order = np.random.default_rng(1)
    for _ in range(n_epochs):
        perm = order.permutation(n)
        if prefetch is None:
            for s in range(0, n, bs):
                rows = perm[s:s + bs]
                net.train_batch(X[rows], np.arange(len(rows) + 1), y[rows], rows=rows)
        else:
            for rows, seeds, prep in net.epoch_batches(X, perm, bs, cached=True,
                                                       prefetch=prefetch):
                net.train_batch(None, np.arange(len(rows) + 1), y[rows], rows=rows,
                                seeds=seeds, prepared=prep)


@pytest.mark.parametrize("sparse_input", [False, True])
def test_cached_input_buckets_give_the_same_training(sparse_input):
    # The first layer's query buckets are hashed once per fit and looked up
    # afterwards: the trained weights must be exactly those of hashing every
    # batch again, and the cache must hold each row's buckets.
    X, y = _small_data(sparse_input)
    nets = []
    for cached in (False, True):
        net = SparseNetwork([12, 60, 3], [True, False], [6, 3], n_tables=6, n_bits=2,
                            rebuild_interval=2, rng=0)
        net.set_input_cache(40 if cached else 0)  # no cache: the rows are not looked up
        _train_epochs(net, X, y, None)
        nets.append(net)
    for a, b in zip(nets[0].layers, nets[1].layers):
        np.testing.assert_array_equal(a.P, b.P)
        np.testing.assert_array_equal(a.b, b.b)
    layer = nets[1].layers[0]
    Xa = X.toarray() if sparse_input else X
    from skmach.neural_network._base import as_activation
    direct = nets[1]._codes(layer, as_activation(Xa))
    np.testing.assert_array_equal(nets[1]._in_codes, direct)
    nets[1].set_input_cache(0)
    assert nets[1]._in_codes is None


def _selecting_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("skmach-select")]


@pytest.mark.parametrize("sparse_input", [False, True])
@pytest.mark.parametrize("rerank", [0, 3])
def test_selecting_ahead_on_a_thread_gives_the_same_training(sparse_input, rerank):
    # epoch_batches selects the first layer's active sets of the batches up to
    # the next rebuild ahead (prefetch > 0: on a thread of its own, while the
    # caller trains): the same weights, tables, rebuilds and counters as
    # selecting each batch's in train_batch.
    X, y = _small_data(sparse_input)
    nets = []
    for prefetch in (None, 0, 1):
        net = SparseNetwork([12, 60, 3], [True, False], [6, 3], n_tables=6, n_bits=2,
                            rebuild_interval=2, rebuild_decay=0.3, rerank=rerank, rng=0)
        assert net.prefetches()
        net.fit_sketch(X)
        net.set_input_cache(40)
        _train_epochs(net, X, y, prefetch)
        nets.append(net)
    assert _selecting_threads() == []  # the pool is gone with its epoch
    ref = nets[0]
    assert len(ref.rebuild_batches) >= 3  # blocks of 2, 3, ... batches, across epochs
    for net in nets[1:]:
        for a, b in zip(ref.layers, net.layers):
            np.testing.assert_array_equal(a.P, b.P)
            np.testing.assert_array_equal(a.b, b.b)
        np.testing.assert_array_equal(ref.layers[0].ids, net.layers[0].ids)
        assert net.rebuild_batches == ref.rebuild_batches
        assert net.flops == ref.flops
        np.testing.assert_array_equal(net.examined_sum, ref.examined_sum)
        assert net.times["retrieval"] > 0


def test_only_a_hidden_lsh_first_layer_is_selected_ahead():
    rng = np.random.default_rng(0)
    # an LSH output layer (hard-negative lists change every batch), a dense
    # first layer: nothing to select ahead, the same batches
    for lsh in ([False, True], [True], [False, False]):
        sizes = [12, 30, 5][:len(lsh) + 1]
        budgets = [30, 2] if len(lsh) == 2 else [5]  # below the width: LSH where asked
        net = SparseNetwork(sizes, lsh, budgets, n_tables=4, n_bits=2, rng=0)
        assert [la.lsh for la in net.layers] == lsh and not net.prefetches()
        X = rng.random((20, 12))
        batches = list(net.epoch_batches(X, np.arange(20)[::-1], 8, prefetch=1))
        assert [len(r) for r, _, _ in batches] == [8, 8, 4]
        assert all(p.sel is None for _, _, p in batches)
        np.testing.assert_array_equal(batches[0][2].act[1], X[19:11:-1].astype(np.float32))


def test_selecting_ahead_holds_a_bounded_number_of_batches(monkeypatch):
    import time
    from contextlib import closing

    from skmach.neural_network import _base

    rng = np.random.default_rng(0)
    X = rng.random((200, 12))
    net = SparseNetwork([12, 60, 3], [True, False], [6, 3], n_tables=6, n_bits=2,
                        rebuild_interval=1000, rng=0)
    calls = []
    prepare = net._prepare
    monkeypatch.setattr(net, "_prepare", lambda *a: calls.append(1) or prepare(*a))
    # at most _LOOKAHEAD batches ahead; 2 where their inputs would not fit the bytes
    for limit, most in ((_base._LOOKAHEAD_BYTES, _base._LOOKAHEAD), (1, 2)):
        monkeypatch.setattr(_base, "_LOOKAHEAD_BYTES", limit)
        calls.clear()
        with closing(net.epoch_batches(X, np.arange(200), 8, prefetch=1)) as batches:
            next(batches)
            deadline = time.monotonic() + 10
            while len(calls) < most and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
            assert len(calls) == most


def test_an_error_while_selecting_ahead_reaches_the_caller(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((64, 12))
    y = rng.integers(0, 3, 64)
    net = SparseNetwork([12, 60, 3], [True, False], [6, 3], n_tables=6, n_bits=2, rng=0)

    def failing(*args, **kwargs):
        raise ArithmeticError("from the selecting thread")

    monkeypatch.setattr(net, "_select", failing)
    with pytest.raises(ArithmeticError, match="selecting thread"):
        _train_epochs(net, X, y, prefetch=1, n_epochs=1)
    assert _selecting_threads() == []
    # a consumer that stops early (an exception of its own) closes the epoch
    monkeypatch.undo()
    from contextlib import closing

    batches = net.epoch_batches(X, np.arange(64), 8, prefetch=1)
    with closing(batches):
        next(batches)
        assert len(_selecting_threads()) == 1
    assert _selecting_threads() == []


@pytest.mark.parametrize("padding_weight", ["importance", "none"])
@pytest.mark.parametrize("hard_negatives", [0, 4])
def test_output_layer_with_lists_keeps_part_of_its_budget_for_the_padding(padding_weight,
                                                                         hard_negatives):
    from skmach.neural_network._base import _PADDING_RESERVE

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(32, 12))).astype(np.float32)
    y = rng.integers(0, 100, 32)
    budget = 20
    # 1-bit codes: every table returns about half the outputs, far over the budget
    net = SparseNetwork([12, 16, 100], [False, True], [16, budget], n_tables=8, n_bits=1,
                        padding_weight=padding_weight, hard_negatives=hard_negatives, rng=0)
    seeds = [None, rng.integers(1, 2**63, 32, dtype=np.uint64)]
    for _ in range(3):  # the lists fill up as the batches report their negatives
        net.train_batch(X, np.arange(33), y)
    out = net.forward(X, train=True, forced=(np.arange(33), y), seeds=seeds)[-1][1]
    _, s, e, ind, _, fm, examined, pad_start, _ = out
    assert np.all(e - s == budget) and np.all(examined > budget)
    n_padding = e - pad_start
    if padding_weight == "importance" and hard_negatives:
        assert np.all(n_padding >= math.ceil(_PADDING_RESERVE * budget))
    else:  # the tables' candidates (and the lists) fill the budget: no padding
        assert np.all(n_padding == 0)
    for i in range(32):  # the label stays active, and every slot is distinct
        assert y[i] in ind[s[i]:e[i]][fm[s[i]:e[i]]]
        assert len(set(ind[s[i]:e[i]])) == budget
