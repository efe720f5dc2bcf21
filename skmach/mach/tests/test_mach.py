import pickle

import numpy as np
import pytest
from sklearn import config_context
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, SGDClassifier

from skmach import MACHClassifier
from skmach.datasets import make_extreme_classification
from skmach.metrics import precision_at_k


@pytest.fixture(scope="module")
def multiclass():
    X, y = make_extreme_classification(n_samples=1500, n_features=300, n_classes=60,
                                       random_state=0)
    return X[:1200], X[1200:], y[:1200], y[1200:]


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_extreme_classification(n_samples=1500, n_features=300, n_classes=80,
                                       multilabel=True, random_state=1)
    return X[:1200], X[1200:], Y[:1200], Y[1200:]


def _p_at_1(clf, X, y):
    top, _ = clf.predict_topk(X, 1)
    return np.mean(top[:, 0] == y)


def test_multiclass_learns_far_above_chance(multiclass):
    Xtr, Xte, ytr, yte = multiclass
    clf = MACHClassifier(n_buckets=16, n_repetitions=8, random_state=0).fit(Xtr, ytr)
    majority = np.bincount(ytr).max() / len(ytr)
    assert _p_at_1(clf, Xte, yte) > max(0.3, 2 * majority)
    assert np.mean(clf.predict(Xte) == yte) == pytest.approx(_p_at_1(clf, Xte, yte))


def test_string_labels(multiclass):
    Xtr, Xte, ytr, yte = multiclass
    names = np.array([f"pkg-{i:03d}" for i in range(60)])  # same order as the ints
    clf = MACHClassifier(n_buckets=16, n_repetitions=4, random_state=0).fit(Xtr, names[ytr])
    assert clf.classes_.dtype.kind == "U"
    pred = clf.predict(Xte)
    ref = MACHClassifier(n_buckets=16, n_repetitions=4, random_state=0).fit(Xtr, ytr).predict(Xte)
    np.testing.assert_array_equal(pred, names[ref])


def test_multilabel_sparse_targets(multilabel):
    Xtr, Xte, Ytr, Yte = multilabel
    clf = MACHClassifier(n_buckets=16, n_repetitions=8, random_state=0).fit(Xtr, Ytr)
    top, scores = clf.predict_topk(Xte, 5)
    assert top.shape == scores.shape == (Xte.shape[0], 5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    p1 = precision_at_k(Yte, top, k=1)
    prior = np.asarray(Ytr.sum(axis=0)).ravel().max() / Ytr.shape[0]
    assert p1 > prior + 0.1  # always answering the most frequent label gets `prior`
    P = clf.predict_proba(Xte[:5])
    assert P.shape == (5, 80) and P.min() >= 0 and P.max() <= 1


@pytest.mark.parametrize("sparse_X", [True, False])
@pytest.mark.parametrize("extra", [{}, {"hidden_layer_size": 8}, {"early_stopping": True},
                                   {"loss": "sigmoid"}])
def test_same_model_whatever_n_jobs(multiclass, sparse_X, extra):
    Xtr, Xte, ytr, _ = multiclass
    if not sparse_X:
        Xtr, Xte = Xtr.toarray(), Xte.toarray()
    outs = []
    for n_jobs in (1, 2, 3):
        clf = MACHClassifier(n_buckets=8, n_repetitions=5, n_epochs=3, n_jobs=n_jobs,
                             random_state=42, **extra).fit(Xtr, ytr)
        outs.append(clf.predict_bucket_proba(Xte))
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0], o)


def test_topk_agrees_with_full_sort_and_chunking(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=4, n_epochs=2, random_state=0).fit(Xtr, ytr)
    S = clf.decision_function(Xte)
    labels, scores = clf.predict_topk(Xte, 7)
    order = np.argsort(-S, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(labels, clf.classes_[order])
    np.testing.assert_allclose(scores, np.take_along_axis(S, order, 1), rtol=1e-5, atol=1e-6)
    with config_context(working_memory=0.01):  # forces many sample and class blocks
        l2, s2 = clf.predict_topk(Xte, 7)
    np.testing.assert_array_equal(labels, l2)
    np.testing.assert_allclose(scores, s2, rtol=1e-6)


def test_decision_function_is_the_unbiased_estimator(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    B = 8
    clf = MACHClassifier(n_buckets=B, n_repetitions=3, n_epochs=2, random_state=0).fit(Xtr, ytr)
    P = clf.predict_bucket_proba(Xte[:4]).astype(np.float64)
    H = clf.hash_family_.buckets()
    mean = np.mean([P[:, r, H[r]] for r in range(3)], axis=0)
    np.testing.assert_allclose(clf.decision_function(Xte[:4]), B / (B - 1) * (mean - 1 / B),
                               rtol=1e-5, atol=1e-6)


def test_predict_proba_rows_sum_to_one_and_memory_guard(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=3, n_epochs=2, random_state=0).fit(Xtr, ytr)
    P = clf.predict_proba(Xte)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    assert P.min() >= 0
    clf.set_params(max_proba_bytes=1000)
    with pytest.raises(ValueError, match="predict_topk"):
        clf.predict_proba(Xte)


def test_partial_fit_over_chunks(multiclass):
    Xtr, Xte, ytr, yte = multiclass
    clf = MACHClassifier(n_buckets=16, n_repetitions=8, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(Xtr[:10], ytr[:10])
    classes = np.arange(60)
    for _ in range(4):
        for s in range(0, 1200, 300):
            clf.partial_fit(Xtr[s:s + 300], ytr[s:s + 300], classes=classes)
    assert _p_at_1(clf, Xte, yte) > 0.3
    assert len(clf.loss_curve_) == 16
    with pytest.raises(ValueError, match="classes differ"):
        clf.partial_fit(Xtr[:10], ytr[:10], classes=np.arange(61))
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(Xtr[:1], np.array([99]))


def test_estimator_parameter(multiclass, multilabel):
    Xtr, Xte, ytr, yte = multiclass
    clf = MACHClassifier(n_buckets=16, n_repetitions=4, random_state=0,
                         estimator=LogisticRegression(max_iter=300)).fit(Xtr, ytr)
    assert len(clf.estimators_) == 4 and not hasattr(clf, "coefs_") or clf.estimator is not None
    assert _p_at_1(clf, Xte, yte) > 0.3
    Xtr, Xte, Ytr, Yte = multilabel
    # SGDClassifier has no multi-label support: it is wrapped in one-vs-rest
    clf = MACHClassifier(n_buckets=8, n_repetitions=3, random_state=0,
                         estimator=SGDClassifier(loss="log_loss", random_state=0)).fit(Xtr, Ytr)
    top, _ = clf.predict_topk(Xte, 1)
    prior = np.asarray(Ytr.sum(axis=0)).ravel().max() / Ytr.shape[0]
    assert precision_at_k(Yte, top, k=1) > prior


def test_candidate_scoring_with_all_buckets_is_exact(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=4, n_epochs=2, random_state=0).fit(Xtr, ytr)
    exact = clf.predict_topk(Xte, 3)
    clf.set_params(n_candidate_buckets=8)
    approx = clf.predict_topk(Xte, 3)
    np.testing.assert_array_equal(exact[0], approx[0])


def test_bad_k_and_device(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=2, n_epochs=1, random_state=0).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="k must be"):
        clf.predict_topk(Xte, 61)
    with pytest.raises(TypeError, match="k must be an integer"):
        clf.predict_topk(Xte, 2.5)
    from skmach._device import cuda_available

    if not cuda_available():
        # no GPU: a clear error, never a silent CPU run labelled 'cuda'
        with pytest.raises(ValueError, match="device='cuda'"):
            MACHClassifier(device="cuda").fit(Xtr, ytr)
    assert MACHClassifier(device="auto").fit(Xtr[:50], ytr[:50]).device_ == "cpu"


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("hidden", [0, 6])
def test_cuda_prediction_matches_cpu_with_the_numpy_standin(multiclass, aggregation, hidden):
    """device="cuda" through the host-side GPU code (the CuPy stand-in runs
    each raw kernel's NumPy reference): the same top-k and predictions."""
    from skmach._gpu import _standin

    Xtr, Xte, ytr, _ = multiclass
    kw = dict(n_buckets=8, n_repetitions=4, hidden_layer_size=hidden, n_epochs=2,
              aggregation=aggregation, random_state=0)
    cpu = MACHClassifier(**kw).fit(Xtr, ytr)
    with _standin.installed():
        gpu = MACHClassifier(**kw, device="cuda").fit(Xtr, ytr)
        assert gpu.device_ == "cuda"
        labels, scores = gpu.predict_topk(Xte[:40], 5)
        pred = gpu.predict(Xte[:40])
    ref_labels, ref_scores = cpu.predict_topk(Xte[:40], 5)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(pred, cpu.predict(Xte[:40]))
    assert "_gpu_cache" not in pickle.loads(pickle.dumps(gpu)).__dict__


def test_pickle_round_trip(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=3, n_epochs=2, random_state=0).fit(Xtr, ytr)
    clf2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_topk(Xte, 5)[0], clf2.predict_topk(Xte, 5)[0])


def test_n_buckets_at_least_n_classes_uses_bijections():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    clf = MACHClassifier(n_buckets=32, n_repetitions=3, n_epochs=50, batch_size=32,
                         learning_rate=0.05,
                         random_state=0).fit(X, y)
    assert clf.n_buckets_ == 3
    ref = LogisticRegression().fit(X, y).score(X, y)
    assert np.mean(clf.predict(X) == y) > ref - 0.05
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1, rtol=1e-6)


def test_sample_weight_validation(multiclass):
    Xtr, _, ytr, _ = multiclass
    clf = MACHClassifier(n_buckets=8, n_repetitions=2, n_epochs=1)
    with pytest.raises(ValueError, match="non-zero|all zero"):
        clf.fit(Xtr, ytr, sample_weight=np.zeros(len(ytr)))
    with pytest.raises(ValueError, match="(?i)negative"):
        clf.fit(Xtr, ytr, sample_weight=-np.ones(len(ytr)))
    with pytest.raises(ValueError, match="shape|length|samples"):
        clf.fit(Xtr, ytr, sample_weight=np.ones(3))


def test_zero_weight_samples_are_ignored_by_the_loss(multiclass):
    Xtr, Xte, ytr, _ = multiclass
    w = np.ones(len(ytr))
    w[::2] = 0
    rng = np.random.default_rng(0)
    y_noise = ytr.copy()
    y_noise[::2] = rng.integers(0, 60, len(y_noise[::2]))
    a = MACHClassifier(n_buckets=8, n_repetitions=2, n_epochs=2, random_state=0, alpha=0)
    b = MACHClassifier(n_buckets=8, n_repetitions=2, n_epochs=2, random_state=0, alpha=0)
    pa = a.fit(Xtr, ytr, sample_weight=w).predict_bucket_proba(Xte)
    pb = b.fit(Xtr, y_noise, sample_weight=w).predict_bucket_proba(Xte)
    np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- issue 11 findings

def test_multilabel_mean_scores_agree_across_methods(multilabel):
    """predict_topk, predict_proba and decision_function use the same estimator."""
    Xtr, Xte, Ytr, _ = multilabel
    clf = MACHClassifier(n_buckets=16, n_repetitions=6, aggregation="mean", n_epochs=3,
                         random_state=0).fit(Xtr, Ytr)
    labels, scores = clf.predict_topk(Xte[:20], 3)
    P = clf.predict_proba(Xte[:20])
    picked = np.take_along_axis(P, labels, axis=1)
    np.testing.assert_allclose(picked, np.clip(scores, 0, 1), rtol=1e-5, atol=1e-6)
    D = clf.decision_function(Xte[:20])
    # a label is predicted (proba > 0.5) exactly where its log-odds are positive
    assert np.array_equal(np.take_along_axis(D, labels, 1) > 0, picked > 0.5)


def test_one_optimiser_whatever_the_density():
    """Sparse and dense X give the same model: lazy Adam touches every row of a
    dense batch, and no speed heuristic switches algorithms in between."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    Xd = rng.random((300, 12)).astype(np.float32)
    Xd[Xd < 0.3] = 0
    Xd[:, 0] = 1  # every batch touches every feature once its rows are stacked
    Xd[Xd[:, 1] == 0, 1] = 0.5
    y = rng.integers(0, 9, 300)
    kw = dict(n_buckets=4, n_repetitions=3, hidden_layer_size=5, n_epochs=2, batch_size=50,
              random_state=0)
    a = MACHClassifier(**kw).fit(Xd, y)
    b = MACHClassifier(**kw).fit(sp.csr_matrix(Xd), y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)


def test_lazy_adam_however_many_features_a_batch_touches():
    """A feature absent from every batch keeps its initial weights, also when
    the batches touch most other features (no switch to a dense step)."""
    import scipy.sparse as sp

    from skmach.mach import _repetition_model as rm

    rng = np.random.default_rng(1)
    X = rng.random((200, 10)).astype(np.float32)
    X[:, 9] = 0  # feature 9 never occurs; every batch touches the 9 others
    X = sp.csr_matrix(X)
    y = rng.integers(0, 9, 200)
    clf = MACHClassifier(n_buckets=4, n_repetitions=2, hidden_layer_size=3, n_epochs=2,
                         batch_size=50, alpha=1.0, random_state=0).fit(X, y)
    init = rm.init_params(10, 4, 3, clf._rep_seeds)
    np.testing.assert_array_equal(clf.coefs_[0][9], init[0][9])
    assert not np.allclose(clf.coefs_[0][:9], init[0][:9])


def test_partial_fit_after_fit_continues_history_and_adam(multiclass):
    Xtr, _, ytr, _ = multiclass
    kw = dict(n_buckets=16, n_repetitions=4, n_epochs=3, random_state=0)
    clf = MACHClassifier(**kw).fit(Xtr, ytr)
    # a fitted model is saved without Adam's moments (its weights only)
    assert "_opt_state" not in pickle.loads(pickle.dumps(clf)).__dict__
    curve, n_iter, t = clf.loss_curve_.copy(), clf.n_iter_.copy(), clf._opt_state["t"]
    clf.partial_fit(Xtr, ytr)
    assert len(clf.loss_curve_) == len(curve) + 1
    np.testing.assert_array_equal(clf.loss_curve_[:len(curve)], curve)
    np.testing.assert_array_equal(clf.n_iter_, n_iter + 1)
    assert clf._opt_state["t"] > t  # Adam's step count (and moments) went on
    # a model that partial_fit is training keeps them, to continue exactly
    assert pickle.loads(pickle.dumps(clf))._opt_state["t"] == clf._opt_state["t"]


def test_partial_fit_sorts_classes_like_scikit_learn(multiclass):
    Xtr, _, ytr, _ = multiclass
    classes = np.arange(60)[::-1]
    clf = MACHClassifier(n_buckets=16, n_repetitions=4, random_state=0)
    clf.partial_fit(Xtr, ytr, classes=classes)
    np.testing.assert_array_equal(clf.classes_, np.arange(60))
    assert set(clf.predict(Xtr[:50])) <= set(range(60))
    top, _ = clf.predict_topk(Xtr[:200], 1)
    assert np.mean(top[:, 0] == ytr[:200]) > 0.1  # labels are not permuted


def test_auto_sizes_follow_the_problem():
    from skmach.mach._sizes import auto_sizes

    est = MACHClassifier()
    small = auto_sizes(est, 159, 4880, 1836)
    big = auto_sizes(est, 24288, 1_198_250, 2**18)
    assert small["n_buckets"] < big["n_buckets"] <= 24288 // 2
    mid = auto_sizes(est, 24288, 1_198_250, 2**16)
    # the first layer's budget, but never fewer than 32 units
    assert mid["hidden_layer_size"] * mid["n_repetitions"] * 2**16 <= 2**25
    assert 32 == big["hidden_layer_size"] < mid["hidden_layer_size"] <= 256
    assert big["n_epochs"] < small["n_epochs"]
    fixed = auto_sizes(MACHClassifier(n_buckets=8, n_repetitions=3, hidden_layer_size=0,
                                      n_epochs=4), 100, 10, 10)
    assert fixed == {"n_buckets": 8, "n_repetitions": 3, "hidden_layer_size": 0, "n_epochs": 4,
                     "learning_rate_schedule": "constant"}
    # a decaying rate from 100,000 samples on, unless the user chose one
    assert (big["learning_rate_schedule"], small["learning_rate_schedule"]) == ("linear",
                                                                                "constant")
    assert auto_sizes(MACHClassifier(learning_rate_schedule="constant"), 24288, 1_198_250,
                      2**16)["learning_rate_schedule"] == "constant"


def test_model_too_large_for_memory_is_refused_before_allocating():
    from skmach.mach._sizes import check_memory

    with pytest.raises(ValueError, match="hidden_layer_size.*n_repetitions"):
        check_memory(2**18, 1024, 8, 0, available=2**30)
    assert check_memory(2**18, 1024, 8, 32, available=2**32) < 2**32
    X = np.zeros((4, 3))
    X[:, 0] = 1
    import scipy.sparse as sp

    wide = sp.csr_matrix((np.ones(4), (np.arange(4), np.zeros(4, int))), shape=(4, 2**31 - 1))
    clf = MACHClassifier(n_buckets=2, n_repetitions=2, hidden_layer_size=0)
    with pytest.raises(ValueError, match="GiB"):
        clf.fit(wide, [0, 1, 0, 1])


def test_linear_learning_rate_schedule_decays_over_fit_not_partial_fit(monkeypatch):
    from skmach.mach import _repetition_model as rm

    seen = []
    real = rm.step_kernels

    def spy(Xb, params, opt, *a, **kw):
        seen.append(opt.learning_rate)
        return real(Xb, params, opt, *a, **kw)

    monkeypatch.setattr(rm, "step_kernels", spy)
    X, y = make_classification(n_samples=100, n_features=8, n_informative=6, n_classes=5,
                               random_state=0)
    kw = dict(n_buckets=4, n_repetitions=2, hidden_layer_size=4, n_epochs=3, batch_size=25,
              learning_rate=0.04, random_state=0, n_jobs=1)
    clf = MACHClassifier(learning_rate_schedule="linear", **kw).fit(X, y)
    assert clf.learning_rate_schedule_ == "linear"
    # 4 batches per epoch, 3 epochs: 0.04 * (1 - t / 12)
    np.testing.assert_allclose(seen, 0.04 * (1 - np.arange(12) / 12))
    seen.clear()
    clf.partial_fit(X, y)
    np.testing.assert_allclose(seen, 0.04)
    seen.clear()
    const = MACHClassifier(**kw).fit(X, y)  # "auto": constant for 100 samples
    np.testing.assert_allclose(seen, 0.04)
    assert const.learning_rate_schedule_ == "constant"
    assert not np.allclose(const.coefs_[0], clf.coefs_[0])
    seen.clear()
    inc = MACHClassifier(learning_rate_schedule="linear", **kw)
    inc.partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_allclose(seen, 0.04)
    assert inc.learning_rate_schedule_ == "constant"
