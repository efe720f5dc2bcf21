import pickle
import warnings

import numba

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
import pytest
import scipy.sparse as sp

from skmach.neural_network import LSHSparseMLPClassifier


def _blobs(n=200, d=10, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(k, d))
    y = rng.integers(0, k, n)
    X = centers[y] + rng.normal(size=(n, d))
    return np.abs(X).astype(np.float32), y


SMALL = dict(hidden_layer_sizes=(64,), lsh_layers="hidden", n_tables=8, n_bits=2, active_budget=0.25,
             n_epochs=15, learning_rate=1e-2, batch_size=32, random_state=0)


def test_learns_and_reports_costs():
    X, y = _blobs()
    clf = LSHSparseMLPClassifier(**SMALL, rerank=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    assert clf.active_fraction_.shape == (2,)
    assert clf.active_fraction_[0] <= 0.25 + 1e-12
    assert clf.active_fraction_[1] == 1.0
    assert 0 < clf.training_flops_ratio_ < 0.5
    assert clf.hashing_flops_ > 0
    assert len(clf.loss_curve_) == clf.n_iter_ <= 15
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    # the re-ranking's sketches are counted too
    reranked = LSHSparseMLPClassifier(**SMALL, rerank=4).fit(X, y)
    assert reranked.training_flops_ > clf.training_flops_
    assert reranked.score(X, y) > 0.9
    dense = LSHSparseMLPClassifier(**{**SMALL, "lsh_layers": "none"}).fit(X, y)
    assert dense.training_flops_ratio_ == 1.0
    np.testing.assert_array_equal(dense.active_fraction_, [1.0, 1.0])


@pytest.mark.parametrize("sparse_X", [False, True])
def test_full_budget_equals_dense_network_exactly(sparse_X):
    X, y = _blobs(n=80)
    if sparse_X:
        X = sp.csr_matrix(X * (X > 1))
    kw = {**SMALL, "n_epochs": 3}
    a = LSHSparseMLPClassifier(**{**kw, "active_budget": 1.0, "lsh_layers": "all"}).fit(X, y)
    b = LSHSparseMLPClassifier(**{**kw, "lsh_layers": "none"}).fit(X, y)
    for la, lb in zip(a._net.layers, b._net.layers):
        np.testing.assert_array_equal(la.W, lb.W)
        np.testing.assert_array_equal(la.b, lb.b)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.loss_curve_ == b.loss_curve_


def test_same_random_state_same_model():
    X, y = _blobs(n=80)
    kw = {**SMALL, "n_epochs": 2, "lsh_layers": "all", "active_budget": 2}
    a = LSHSparseMLPClassifier(**kw).fit(X, y)
    b = LSHSparseMLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(a._net.layers[0].W, b._net.layers[0].W)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = LSHSparseMLPClassifier(**{**kw, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a._net.layers[0].W, c._net.layers[0].W)


@pytest.mark.parametrize("hash_family", ["dwta", "simhash"])
@pytest.mark.parametrize("selection", ["union", "threshold"])
def test_families_and_selections_train(hash_family, selection):
    X, y = _blobs()
    # 0.25 * 30 = 7.5 neurons: the budget rounds down, never above the fraction
    clf = LSHSparseMLPClassifier(**{**SMALL, "hash_family": hash_family, "min_active": 0.5,
                                    "hidden_layer_sizes": (30,),
                                    "selection": selection}).fit(X, y)
    assert clf.score(X, y) > 0.6  # 4 classes: chance is 0.25
    assert clf.active_fraction_[0] <= 0.25 + 1e-12


def test_multilabel_sparse_targets_with_lsh_output():
    rng = np.random.default_rng(0)
    n, d, L = 150, 12, 30
    W = rng.normal(size=(d, L))
    X = rng.normal(size=(n, d))
    S = X @ W
    Y = np.zeros((n, L), dtype=int)
    top = np.argsort(-S, 1)[:, :2]
    Y[np.arange(n)[:, None], top] = 1
    Y[0] = 0  # a row without labels is accepted (ignored by the loss)
    Ys = sp.csr_matrix(Y)
    clf = LSHSparseMLPClassifier(hidden_layer_sizes=(32,), lsh_layers="output",
                                 active_budget=0.3, n_tables=10, n_bits=2, n_epochs=30,
                                 learning_rate=1e-2, batch_size=32, random_state=0)
    clf.fit(X, Ys)
    np.testing.assert_array_equal(clf.classes_, np.arange(L))
    labels, scores = clf.predict_topk(X, 3)
    assert labels.shape == (n, 3) and np.all(np.diff(scores, axis=1) <= 0)
    p_at_1 = np.mean(Y[np.arange(n), labels[:, 0]])
    assert p_at_1 > 0.7
    assert clf.score(X, Ys) == pytest.approx(p_at_1)
    pred = clf.predict(X)
    assert sp.issparse(pred) and pred.shape == (n, L)
    # the output layer's active fraction counts forced labels, within budget
    assert clf.active_fraction_[1] <= 0.3 + 1e-12
    # scoring through the index: non-retrieved labels get probability 0
    clf.set_params(output_scoring="lsh")
    P = clf.predict_proba(X)
    assert np.all((P > 0).sum(1) <= 9)
    np.testing.assert_allclose(P.sum(1), 1)
    # batch-independent: one sample alone gives the same answer
    np.testing.assert_allclose(clf.predict_proba(X[3:4]), P[3:4], rtol=1e-5)


def test_partial_fit_and_early_stopping():
    X, y = _blobs()
    clf = LSHSparseMLPClassifier(**SMALL)
    clf.partial_fit(X[:50], y[:50], classes=np.arange(4))
    clf.partial_fit(X[50:], y[50:])
    assert clf.n_iter_ == 2 and clf.t_ == 200
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[:5], y[:5] + 10)
    es = LSHSparseMLPClassifier(**{**SMALL, "early_stopping": True, "n_iter_no_change": 2,
                                   "n_epochs": 50}).fit(X, y)
    assert es.n_iter_ < 50 and len(es.validation_scores_) == es.n_iter_


def test_bad_inputs():
    X, y = _blobs(n=40)
    clf = LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 1}).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :5])
    with pytest.raises(ValueError, match="k must be"):
        clf.predict_topk(X, 5)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LSHSparseMLPClassifier(**SMALL).fit(Xn, y)
    with pytest.raises(ValueError, match="lsh_layers"):
        LSHSparseMLPClassifier(lsh_layers=(True,)).fit(X, y)
    with pytest.raises(ValueError, match="selection"):
        LSHSparseMLPClassifier(selection="best").fit(X, y)
    with pytest.raises(ValueError, match="device"):
        LSHSparseMLPClassifier(device="cuda").fit(X, y)



@pytest.mark.parametrize("min_work", [0, None])
@pytest.mark.parametrize("rerank", [0, 4])
def test_same_model_whatever_n_jobs(rerank, min_work, monkeypatch):
    import skmach._kernels

    if min_work is not None:  # every kernel parallel, however small (else: all serial here)
        monkeypatch.setattr(skmach._kernels, "MIN_PARALLEL_WORK", min_work)
    X, y = _blobs(n=120)
    kw = {**SMALL, "n_epochs": 2, "lsh_layers": "all", "active_budget": 2, "rerank": rerank}
    a = LSHSparseMLPClassifier(**kw, n_jobs=1).fit(X, y)
    b = LSHSparseMLPClassifier(**kw, n_jobs=2).fit(X, y)
    for la, lb in zip(a._net.layers, b._net.layers):
        np.testing.assert_array_equal(la.W, lb.W)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_dense_layers_give_the_same_model_whatever_n_jobs():
    # a dense layer over a dense input multiplies in BLAS, whose own threads
    # sum in another order than one thread (weights apart in the 7th digit):
    # the large products run in blocks on the fit's threads instead
    rng = np.random.default_rng(0)
    X = rng.random((300, 784)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    kw = dict(hidden_layer_sizes=(500,), lsh_layers="none", n_epochs=2, batch_size=128,
              random_state=0)
    a = LSHSparseMLPClassifier(**kw, n_jobs=1).fit(X, y)
    b = LSHSparseMLPClassifier(**kw, n_jobs=2).fit(X, y)
    for la, lb in zip(a._net.layers, b._net.layers):
        np.testing.assert_array_equal(la.P, lb.P)
    assert b._net._gemm_helpers is None  # the epoch's threads are gone with it
    pickle.loads(pickle.dumps(b))


@pytest.mark.parametrize("m", [128, 96, 43, 17, 1])
def test_blocked_products_are_the_single_call_on_any_threads(m):
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from skmach.neural_network._base import _blocked_product

    rng = np.random.default_rng(m)
    for k, n in ((784, 1000), (128, 3000), (3000, 128)):
        A = rng.random((m, k)).astype(np.float32)
        B = rng.standard_normal((k, n)).astype(np.float32)
        with threadpool_limits(1, user_api="blas"):
            ref = np.dot(A, B)
            one = _blocked_product(A, B, np.empty_like(ref))
            with ThreadPoolExecutor(2) as pool:
                two = _blocked_product(A, B, np.empty_like(ref), (pool, 2))
        np.testing.assert_array_equal(one, two)  # the blocks, whatever the threads
        np.testing.assert_array_equal(one, ref)  # and the rows of the single call


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("layer, ahead", [("omp", 1), ("tbb", 1), ("workqueue", 0)])
def test_a_selecting_thread_only_where_the_threading_layer_is_threadsafe(layer, ahead,
                                                                         monkeypatch):
    # Numba's workqueue layer terminates the process when two threads enter
    # it: there the first layer is selected inline, batch by batch
    from skmach.neural_network._base import SparseNetwork

    asked = []
    epoch_batches = SparseNetwork.epoch_batches

    def spy(self, *args, prefetch=0, **kwargs):
        asked.append(prefetch)
        return epoch_batches(self, *args, prefetch=prefetch, **kwargs)

    monkeypatch.setattr(SparseNetwork, "epoch_batches", spy)
    monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    X, y = _blobs(n=60)
    LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 2}, n_jobs=2).fit(X, y)
    assert asked == [ahead, ahead]


def test_retrieval_is_sublinear_and_costs_are_reported():
    X, y = _blobs(n=300, d=20, k=3)
    clf = LSHSparseMLPClassifier(hidden_layer_sizes=(2000,), lsh_layers="hidden", n_bits=4,
                                 n_tables=10, active_budget=0.02, n_epochs=2,
                                 random_state=0).fit(X, y)
    # bucket entries examined per sample: far fewer than the 2000 neurons
    assert 0 < clf.candidates_per_sample_[0] < 0.5 * 2000
    assert clf.candidates_per_sample_[1] == 3  # dense layer: every neuron
    assert clf.active_fraction_[0] <= 0.02 + 1e-12
    t = clf.time_breakdown_
    assert set(t) >= {"hashing", "retrieval", "forward", "backward", "update", "rebuild"}
    assert t["hashing"] > 0 and t["retrieval"] > 0
    assert len(clf.epoch_cpu_times_) == len(clf.epoch_times_) == 2
    # the cost counts hashing, retrieval and the optimiser, so it exceeds the
    # multiply-adds of the active neurons alone
    assert clf.training_flops_ > clf.hashing_flops_ > 0


def test_auto_puts_lsh_on_wide_output_layers_only():
    rng = np.random.default_rng(0)
    X = rng.random((50, 6)).astype(np.float32)
    few = LSHSparseMLPClassifier(hidden_layer_sizes=(16,), n_epochs=1).fit(X, np.arange(50) % 5)
    np.testing.assert_array_equal(few.lsh_layers_, [False, False])
    from skmach.neural_network import _lsh_mlp

    many = _lsh_mlp._AUTO_MIN_OUTPUT
    Xm = rng.random((many, 6)).astype(np.float32)
    wide = LSHSparseMLPClassifier(hidden_layer_sizes=(16,), n_epochs=1).fit(Xm, np.arange(many))
    np.testing.assert_array_equal(wide.lsh_layers_, [False, True])
    assert wide.active_fraction_[1] < 1


def test_verbose_shows_a_progress_bar_and_quiet_prints_nothing(capsys):
    X, y = _blobs(n=64)
    LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 2}).fit(X, y)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 2, "verbose": 1}).fit(X, y)
    out = capsys.readouterr()
    assert "loss" in out.err and "4/4" in out.err  # 2 epochs x 2 batches of 32


def test_padding_weight_changes_only_the_training_with_padding():
    X, y = _blobs(n=240, k=40, seed=3)
    kw = dict(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4, n_bits=4,
              n_epochs=3, learning_rate=1e-2, batch_size=32, random_state=0)
    # a budget of every output: nothing is padding, the weighting is a no-op
    full = [LSHSparseMLPClassifier(**kw, active_budget=1.0, padding_weight=w).fit(X, y)
            for w in ("importance", "none")]
    np.testing.assert_array_equal(full[0]._net.layers[1].W, full[1]._net.layers[1].W)
    assert full[0].loss_curve_ == full[1].loss_curve_
    # 10% of 40 outputs: padded rows train differently; predictions stay valid
    small = [LSHSparseMLPClassifier(**kw, active_budget=0.1, padding_weight=w).fit(X, y)
             for w in ("importance", "none")]
    assert small[0].loss_curve_ != small[1].loss_curve_
    for clf in small:
        P = clf.predict_proba(X)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="padding_weight"):
        LSHSparseMLPClassifier(padding_weight="uniform").fit(X, y)


def test_a_network_pickled_before_the_catch_up_state_trains_on():
    import pickle

    X, y = _blobs(n=120, k=30, seed=4)
    clf = LSHSparseMLPClassifier(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4,
                                 n_bits=4, active_budget=0.2, n_epochs=1, batch_size=32,
                                 random_state=0).fit(X, y)
    net = clf._net
    # what an older pickle holds: no catch-up state, no padding weights
    del net.layers[-1].last_step, net.padding_weight, clf.padding_weight
    del net.rerank, clf.rerank, clf.sketch_dim
    del clf.hard_negatives, net.layers[-1].neg_ids, net.layers[-1].neg_cnt
    old = pickle.loads(pickle.dumps(clf))
    assert old.get_params()["rerank"] == 0 and old._net.rerank == 0
    assert old.get_params()["hard_negatives"] == 0
    layer = old._net.layers[-1]
    np.testing.assert_array_equal(layer.last_step, np.full(30, old._net.t))  # up to date
    assert old._net.padding_weight == "none"
    assert old.get_params()["padding_weight"] == "none"
    assert "padding_weight='none'" in repr(old)
    P = layer.P.copy()
    old._net.flush_momentum()  # nothing pending: nothing moves
    np.testing.assert_array_equal(layer.P, P)
    clone(old).fit(X, y)
    old.partial_fit(X, y)
    assert old.n_iter_ == 2 and np.isfinite(old.loss_curve_[-1])


@pytest.mark.parametrize("sparse_X", [False, True])
def test_rerank_keeps_the_candidates_with_the_largest_pre_activations(sparse_X):
    from skmach.neural_network._base import as_activation

    X, y = _blobs(n=120, d=10)
    if sparse_X:
        X = sp.csr_matrix(X * (X > 1))
    budget, rerank = 4, 6
    # no padding: the candidates below are the retrieved neurons only
    clf = LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 2, "active_budget": budget},
                                 rerank=rerank, sketch_dim=10, min_active=0.0).fit(X, y)
    net = clf._net
    layer = net.layers[0]
    # a sketch of full rank (10 input features) scores the exact w.x + b
    net._refresh_sketch(layer, np.arange(layer.n_out))  # as fresh as the weights
    act = as_activation(X[:30], ragged_if_sparse=True)
    s, e, ind = net._select(layer, act, False, None, None)[:3]
    # the candidates: the rerank * budget neurons with the most collisions
    sketch, layer.sketch, layer.budget = layer.sketch, None, budget * rerank
    cs, ce, cind = net._select(layer, act, False, None, None)[:3]
    layer.sketch, layer.budget = sketch, budget
    Z = np.asarray(X[:30] @ layer.W.T) + layer.b
    n_pruned = 0
    for i in range(30):
        kept, cand = ind[s[i]:e[i]], cind[cs[i]:ce[i]]
        assert set(kept) <= set(cand)
        assert len(kept) == min(budget, len(cand))
        dropped = np.setdiff1d(cand, kept)
        if len(dropped):
            n_pruned += 1
            assert Z[i, kept].min() >= Z[i, dropped].max() - 1e-4
    assert n_pruned > 0  # the re-ranking chose among more than the budget
    # the training rows' query sketches, cached, are the ones computed afresh
    net.set_input_cache(30)
    rows = np.arange(30)
    Q0 = net._rerank_query(layer, act)
    fl = [0.0]
    Q1 = net._query_sketch(layer, act, rows, fl)  # computes and caches
    assert fl[0] > 0.0
    fl = [0.0]
    Q2 = net._query_sketch(layer, act, rows, fl)  # reads the cache
    np.testing.assert_array_equal(Q0, Q1)
    np.testing.assert_array_equal(Q0, Q2)
    assert fl[0] == 0.0  # nothing recomputed
    net.set_input_cache(0)


def test_hard_negatives_are_remembered_per_label_and_trained_against():
    X, y = _blobs(n=400, k=60, seed=5)
    kw = dict(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4, n_bits=4,
              active_budget=0.1, n_epochs=3, learning_rate=1e-2, batch_size=32,
              random_state=0)
    plain = LSHSparseMLPClassifier(**kw, hard_negatives=0).fit(X, y)
    assert plain._net.layers[-1].neg_ids is None
    assert LSHSparseMLPClassifier().hard_negatives == 0  # off by default
    # at most half the budget (6 of 60 active: 3 hard negatives) is theirs
    capped = LSHSparseMLPClassifier(**kw, hard_negatives=32).fit(X, y)
    assert capped._net.layers[-1].neg_ids.shape == (60, 32)
    assert capped.active_fraction_[1] <= 0.1 + 1e-12
    a = LSHSparseMLPClassifier(**kw, hard_negatives=4, n_jobs=1).fit(X, y)
    layer = a._net.layers[-1]
    assert layer.neg_ids.shape == (60, 4)
    seen = np.unique(y)
    assert (layer.neg_ids[seen] >= 0).all()  # every label seen has its list filled
    for lab in seen:
        assert lab not in layer.neg_ids[lab]
        assert len(set(layer.neg_ids[lab].tolist())) == 4
    assert a.loss_curve_ != plain.loss_curve_  # they changed the training
    # the lists are counted: lookups (entries examined) and their upkeep
    assert a.candidates_per_sample_[-1] > plain.candidates_per_sample_[-1]
    assert a.training_flops_ > plain.training_flops_
    # the same model whatever n_jobs, and after a pickle the lists go on
    b = LSHSparseMLPClassifier(**kw, hard_negatives=4, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(layer.W, b._net.layers[-1].W)
    np.testing.assert_array_equal(layer.neg_ids, b._net.layers[-1].neg_ids)
    import pickle

    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c._net.layers[-1].neg_cnt, layer.neg_cnt)
    c.partial_fit(X, y)
    assert c._net.layers[-1].neg_cnt.sum() > layer.neg_cnt.sum()
    # no LSH output layer: nothing to remember
    hidden = LSHSparseMLPClassifier(**{**kw, "lsh_layers": "hidden"}, hard_negatives=4).fit(X, y)
    assert hidden._net.layers[-1].neg_ids is None
    with pytest.raises(ValueError, match="hard_negatives"):
        LSHSparseMLPClassifier(hard_negatives=-1).fit(X, y)


def test_gradient_threshold_updates_only_the_outputs_with_large_gradients(monkeypatch):
    X, y = _blobs(n=400, k=60, seed=5)
    kw = dict(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4, n_bits=4,
              active_budget=0.2, n_epochs=1, learning_rate=1e-2, batch_size=8,
              random_state=0)
    assert LSHSparseMLPClassifier().gradient_threshold == 0.0  # off by default
    # one batch of 8 samples, 12 of 60 outputs active each: the rows updated
    # are those of the slots kept
    from skmach.neural_network._base import SparseNetwork

    start, train_batch = [], SparseNetwork.train_batch

    def spy(net, *args, **kwargs):
        start.append(net.layers[-1].W.copy())
        return train_batch(net, *args, **kwargs)

    monkeypatch.setattr(SparseNetwork, "train_batch", spy)
    changed = {}
    for tau in (0.0, 0.2):
        m = LSHSparseMLPClassifier(**kw, gradient_threshold=tau)
        m.partial_fit(X[:8], y[:8], classes=np.unique(y))
        changed[tau] = set(np.flatnonzero(np.any(m._net.layers[-1].W != start[-1], axis=1)))
    monkeypatch.undo()
    # 0.2 of |p - y|: the true labels (p about 1/12 at first) and few others
    assert set(y[:8]) <= changed[0.2] < changed[0.0]
    assert len(changed[0.2]) < len(changed[0.0]) / 2
    # it learns as the full update does, with less work counted
    kw.update(n_epochs=5, batch_size=32)
    full = LSHSparseMLPClassifier(**kw).fit(X, y)
    thin = LSHSparseMLPClassifier(**kw, gradient_threshold=0.01, n_jobs=1).fit(X, y)
    assert thin.score(X, y) > full.score(X, y) - 0.05
    assert thin.training_flops_ < full.training_flops_
    # the same model whatever n_jobs; pickled, it trains on with the threshold
    other = LSHSparseMLPClassifier(**kw, gradient_threshold=0.01, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(thin._net.layers[-1].W, other._net.layers[-1].W)
    c = pickle.loads(pickle.dumps(thin))
    assert c._net.gradient_threshold == 0.01
    c.partial_fit(X, y)
    # a dense output layer has no active set to thin: no effect
    dense = {**kw, "lsh_layers": "none"}
    np.testing.assert_array_equal(
        LSHSparseMLPClassifier(**dense).fit(X, y)._net.layers[-1].P,
        LSHSparseMLPClassifier(**dense, gradient_threshold=0.5).fit(X, y)._net.layers[-1].P)
    for bad in (-0.1, 1.0, np.nan):
        with pytest.raises(ValueError, match="gradient_threshold"):
            LSHSparseMLPClassifier(gradient_threshold=bad).fit(X, y)


def test_gradient_threshold_with_several_labels_per_sample_is_warned_about():
    X, y = _blobs(n=200, k=30, seed=1)
    Y = np.zeros((200, 30), dtype=int)
    Y[np.arange(200), y] = 1
    Y[np.arange(200), (y + 1) % 30] = 1
    kw = dict(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4, n_bits=4,
              active_budget=0.3, n_epochs=1, random_state=0)
    with pytest.warns(UserWarning, match="gradient_threshold=0.01 with 2.0 labels per sample"):
        LSHSparseMLPClassifier(**kw, gradient_threshold=0.01).fit(X, Y)
    with pytest.warns(UserWarning, match="labels per sample"):
        LSHSparseMLPClassifier(**kw, gradient_threshold=0.01).partial_fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSHSparseMLPClassifier(**kw).fit(X, Y)
        LSHSparseMLPClassifier(**kw, gradient_threshold=0.01).fit(X, y)  # multi-class
        Y[np.arange(0, 200, 2), (y[::2] + 1) % 30] = 0  # 1.5 labels per sample
        LSHSparseMLPClassifier(**kw, gradient_threshold=0.01).fit(X, Y)


def test_rerank_changes_nothing_without_an_lsh_first_layer():
    X, y = _blobs(n=120, k=30, seed=4)
    kw = dict(hidden_layer_sizes=(16,), lsh_layers="output", n_tables=4, n_bits=4,
              active_budget=0.2, n_epochs=2, batch_size=32, random_state=0)
    a = LSHSparseMLPClassifier(**kw).fit(X, y)
    b = LSHSparseMLPClassifier(**kw, rerank=5).fit(X, y)
    assert b._net.layers[0].__dict__.get("sketch") is None
    for la, lb in zip(a._net.layers, b._net.layers):
        np.testing.assert_array_equal(la.W, lb.W)


def test_rerank_leaves_an_lsh_output_layer_alone_when_it_is_the_first_layer():
    # no hidden layer: the LSH output layer is the first layer; re-ranking
    # there could drop a sample's labels from its active set, and the
    # docstring promises that output layers ignore ``rerank``
    X, y = _blobs(n=120, k=30, seed=4)
    kw = dict(hidden_layer_sizes=(), lsh_layers="output", n_tables=4, n_bits=4,
              active_budget=0.2, n_epochs=2, batch_size=32, random_state=0)
    a = LSHSparseMLPClassifier(**kw, rerank=0).fit(X, y)
    b = LSHSparseMLPClassifier(**kw, rerank=5).fit(X, y)
    assert b._net.layers[0].__dict__.get("sketch") is None
    np.testing.assert_array_equal(a._net.layers[0].W, b._net.layers[0].W)


@pytest.mark.parametrize("lsh_layers, hidden, sparse, blas", [
    ("none", (16,), False, True),       # dense layers over a dense input: BLAS products
    ("none", (16,), True, True),        # the hidden layer's output is dense: BLAS again
    ("hidden", (16,), False, False),    # LSH hidden layer, dense output over its active set
    ("output", (16,), True, False),     # dense first layer over sparse input, LSH output
    ("output", (16,), False, True),     # dense first layer over a dense input
    ("output", (16, 16), True, True),   # a dense hidden layer over a dense one
])
def test_blas_on_one_thread_and_product_blocks_only_where_training_has_them(lsh_layers,
                                                                          hidden, sparse,
                                                                          blas):
    # BLAS sums in another order on several threads: it keeps one, and the
    # fit's other threads take blocks of the dense products, where there are
    from threadpoolctl import threadpool_info

    X, y = _blobs(n=60)
    X = sp.csr_matrix(X) if sparse else X
    kw = {**SMALL, "n_epochs": 1, "lsh_layers": lsh_layers, "hidden_layer_sizes": hidden,
          "active_budget": 0.5}  # an LSH output layer needs 2 active outputs of 4
    clf = LSHSparseMLPClassifier(**kw, n_jobs=2).fit(X, y)
    assert clf._net.uses_blas(sparse) is blas
    for n in (2, None):
        with clf._threads(n)[1]:
            assert {i["num_threads"] for i in threadpool_info()
                    if i["user_api"] == "blas"} <= {1}
    with clf._net.gemm_threads(2, sparse):
        helpers = clf._net._gemm_helpers
        assert (helpers is not None) is blas
        assert helpers is None or helpers[1] == 1  # the calling thread is the other
    assert clf._net._gemm_helpers is None
    with clf._net.gemm_threads(1, sparse):
        assert clf._net._gemm_helpers is None


def test_hidden_layer_that_retrieves_almost_nothing_is_warned_about():
    # 60 dense features, 6-bit DWTA codes: the tables of a forced LSH hidden
    # layer return under one entry per sample for 20 active units
    X, y = make_classification(600, 60, n_informative=30, n_classes=10, random_state=0)
    kw = dict(hidden_layer_sizes=(400,), lsh_layers="hidden", n_epochs=2, random_state=0)
    with pytest.warns(UserWarning, match="hidden layer 0 returned") as rec:
        clf = LSHSparseMLPClassifier(**kw).fit(X, y)
    assert len([w for w in rec if "hidden layer" in str(w.message)]) == 1  # first epoch only
    assert rec[0].filename == __file__  # points at the caller
    assert clf.candidates_per_sample_[0] < 0.1 * 20
    # shorter codes retrieve enough: no warning, from fit or partial_fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = LSHSparseMLPClassifier(**{**kw, "n_bits": 2}).fit(X, y)
        LSHSparseMLPClassifier(**{**kw, "n_bits": 2}).partial_fit(X, y)
    assert ok.candidates_per_sample_[0] > 0.1 * 20
    with pytest.warns(UserWarning, match="hidden layer 0 returned") as rec:
        LSHSparseMLPClassifier(**kw).partial_fit(X, y)
    assert rec[0].filename == __file__


def test_predict_topk_ranks_by_the_logits_where_probabilities_underflow():
    # softmax of logits 745 apart underflows to 0: ranking the probabilities
    # broke those ties by column, not by logit
    X, y = _blobs(n=60)
    clf = LSHSparseMLPClassifier(**{**SMALL, "n_epochs": 1}).fit(X, y)
    z = np.full((2, clf.n_outputs_), -1000.0)
    z[:, :4] = [[-800.0, -750.0, -900.0, 0.0], [0.0, -760.0, -750.0, -800.0]]
    clf._scores = lambda X: z[: X.shape[0]]
    labels, proba = clf.predict_topk(X[:2], 3)
    np.testing.assert_array_equal(labels, clf.classes_[[[3, 1, 0], [0, 2, 1]]])
    np.testing.assert_array_equal(labels[:, 0], clf.predict(X[:2]))
    assert proba[:, 0].tolist() == [1.0, 1.0] and (proba[:, 1:] == 0).all()
