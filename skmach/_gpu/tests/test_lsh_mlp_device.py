"""``LSHSparseMLPClassifier`` prediction on the device (:mod:`skmach._gpu._lsh_mlp`)
against the CPU estimator, on small fitted models; the ``cp`` fixture gives
the stand-in (every commit) and the real CuPy (``gpu``-marked)."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from skmach._gpu._lsh_mlp import (
    lsh_mlp_params_to_device,
    lsh_mlp_predict_proba,
    lsh_mlp_scores,
    lsh_mlp_topk,
)
from skmach.neural_network import LSHSparseMLPClassifier



def _data(n=260, d=16, k=40, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(k, d))
    y = rng.integers(0, k, n)
    X = np.abs(centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    X[X < 1.0] = 0  # zeros: DWTA densification, sparse input
    return X[:200], X[200:], y[:200]


_BASE = dict(n_tables=8, n_bits=2, active_budget=0.25, n_epochs=3, learning_rate=1e-2,
             batch_size=32, random_state=0)

# (hidden sizes, lsh_layers, output_scoring, hash family): dense, LSH hidden
# (active sets), LSH output scored fully or on its retrieved set, two LSH layers
_MODELS = {
    "dense": dict(hidden_layer_sizes=(32,), lsh_layers="none"),
    "lsh-hidden": dict(hidden_layer_sizes=(64,), lsh_layers="hidden"),
    "lsh-output-full": dict(hidden_layer_sizes=(16,), lsh_layers="output"),
    "lsh-output-lsh": dict(hidden_layer_sizes=(16,), lsh_layers="output",
                           output_scoring="lsh"),
    "all-simhash": dict(hidden_layer_sizes=(48, 32), lsh_layers="all", output_scoring="lsh",
                        hash_family="simhash"),
    # long codes, no padding: most samples retrieve no output (scored in full)
    "lsh-output-empty": dict(hidden_layer_sizes=(16,), lsh_layers="output",
                             output_scoring="lsh", min_active=0.0, n_bits=16),
}

_FITTED = {}


def _fitted(name, sparse):
    key = (name, sparse)
    if key not in _FITTED:
        Xtr, Xte, ytr = _data()
        if sparse:
            Xtr, Xte = sp.csr_matrix(Xtr), sp.csr_matrix(Xte)
        with warnings.catch_warnings():  # lsh-output-empty: "retrieved almost nothing"
            warnings.simplefilter("ignore", UserWarning)
            clf = LSHSparseMLPClassifier(**{**_BASE, **_MODELS[name]}).fit(Xtr, ytr)
        _FITTED[key] = (clf, Xte)
    return _FITTED[key]


def _upload(cp, X):
    from skmach._gpu import to_device

    return to_device(X, "cuda") if sp.issparse(X) else cp.asarray(X)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name", list(_MODELS))
def test_scores_proba_topk_match_the_cpu(cp, name, sparse):
    clf, Xte = _fitted(name, sparse)
    out_lsh = clf.output_scoring == "lsh"
    net = clf._net
    params = lsh_mlp_params_to_device(net)
    ref = clf.decision_function(Xte)
    Z = lsh_mlp_scores(net, _upload(cp, Xte), params, output_lsh=out_lsh)
    assert isinstance(Z, cp.ndarray) and Z.dtype == np.float32 and Z.shape == ref.shape
    Z = Z.get()
    # the same outputs left out (-inf), the same logits to float32 rounding
    np.testing.assert_array_equal(np.isinf(Z), np.isinf(ref))
    if name == "lsh-output-empty":  # rows without any retrieved output: scored in full
        assert np.isfinite(ref).all(axis=1).sum() >= len(ref) // 2
    elif out_lsh and clf.lsh_layers_[-1]:
        assert np.isinf(ref).any()  # the test exercises excluded outputs
    fin = np.isfinite(ref)
    np.testing.assert_allclose(Z[fin], ref[fin], rtol=1e-4, atol=1e-4)
    # predict_proba, predict_topk and predict
    np.testing.assert_allclose(lsh_mlp_predict_proba(net, _upload(cp, Xte), params,
                                                     output_lsh=out_lsh),
                               clf.predict_proba(Xte), rtol=1e-4, atol=1e-6)
    idx, proba = lsh_mlp_topk(net, _upload(cp, Xte), 5, params, output_lsh=out_lsh)
    ref_labels, ref_proba = clf.predict_topk(Xte, 5)
    assert idx.dtype == np.int64 and proba.dtype == np.float64
    np.testing.assert_array_equal(clf.classes_[idx], ref_labels)
    np.testing.assert_allclose(proba, ref_proba, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(clf.classes_[idx[:, 0]], clf.predict(Xte))


def test_lsh_hidden_layer_uses_the_active_sets(cp):
    # a hidden LSH layer computes only the retrieved neurons: the full dense
    # product would give other logits, the masked one the CPU's
    clf, Xte = _fitted("lsh-hidden", False)
    net = clf._net
    assert clf.lsh_layers_[0] and net.layers[0].budget < net.layers[0].n_out
    Z = lsh_mlp_scores(net, cp.asarray(Xte)).get()
    H = np.maximum(Xte @ net.layers[0].W.T + net.layers[0].b, 0)
    dense = H @ net.layers[1].W.T + net.layers[1].b
    assert not np.allclose(dense, clf.decision_function(Xte), rtol=1e-3)
    np.testing.assert_allclose(Z, clf.decision_function(Xte), rtol=1e-4, atol=1e-4)


def test_host_input_is_uploaded_and_errors(cp):
    clf, Xte = _fitted("dense", False)
    net = clf._net
    np.testing.assert_allclose(lsh_mlp_scores(net, Xte).get(), clf.decision_function(Xte),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        lsh_mlp_scores(net, cp.asarray(Xte[:, :3]))
    with pytest.raises(ValueError, match="layers"):
        lsh_mlp_scores(net, cp.asarray(Xte), lsh_mlp_params_to_device(net)[:1])
    with pytest.raises(ValueError, match="k must"):
        lsh_mlp_topk(net, cp.asarray(Xte), 0)
    with pytest.raises(TypeError, match="integer"):
        lsh_mlp_topk(net, cp.asarray(Xte), 2.0)


# ------------------------------------------------------------ the estimator

def _wired_check_predict(self, X):
    # the report's lines for LSHSparseMLPClassifier._check_predict
    from sklearn.utils.validation import check_is_fitted

    from skmach._gpu._validation import check_prediction_input

    check_is_fitted(self, "_net")
    return check_prediction_input(self, X, getattr(self, "device_", "cpu"),
                                  accept_sparse=("csr",), dtype=(np.float32, np.float64))


def _wired_scores(original):
    # the report's lines at the top of LSHSparseMLPClassifier._scores
    def _scores(self, X):
        if getattr(self, "device_", "cpu") == "cuda":
            from skmach._gpu._lsh_mlp import LSHMLPDeviceCache, lsh_mlp_host_scores

            cache = self.__dict__.setdefault("_gpu_cache", LSHMLPDeviceCache())
            return lsh_mlp_host_scores(self._net, X, cache.get(self._net),
                                       output_lsh=self.output_scoring == "lsh")
        return original(self, X)

    return _scores


def _estimator_matches_cpu(cp, clf, ref, Xte, monkeypatch):
    from sklearn import config_context

    from skmach._gpu import _lsh_mlp

    calls = []
    real = _lsh_mlp.lsh_mlp_scores
    monkeypatch.setattr(_lsh_mlp, "lsh_mlp_scores",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    for X in (Xte, _upload(cp, Xte)):
        with config_context(array_api_dispatch=True):
            np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(Xte),
                                       rtol=1e-4, atol=1e-6)
            np.testing.assert_array_equal(clf.predict(X), ref.predict(Xte))
            labels, proba = clf.predict_topk(X, 4)
            ref_labels, ref_proba = ref.predict_topk(Xte, 4)
            np.testing.assert_array_equal(labels, ref_labels)
            np.testing.assert_allclose(proba, ref_proba, rtol=1e-4, atol=1e-6)
    assert len(calls) >= 6  # every prediction went through the device
    import pickle

    assert "_gpu_cache" not in pickle.loads(pickle.dumps(clf)).__dict__


@pytest.mark.parametrize("name", ["lsh-hidden", "all-simhash"])
def test_estimator_with_the_wiring(cp, monkeypatch, name):
    from skmach.neural_network import _lsh_mlp as est_mod

    cls = est_mod.LSHSparseMLPClassifier
    monkeypatch.setattr(cls, "_check_predict", _wired_check_predict)
    monkeypatch.setattr(cls, "_scores", _wired_scores(cls._scores))
    orig_getstate = cls.__getstate__

    def __getstate__(self):  # the report's lines
        state = orig_getstate(self)
        state.pop("_gpu_cache", None)
        return state

    monkeypatch.setattr(cls, "__getstate__", __getstate__)
    ref, Xte = _fitted(name, False)
    import copy

    clf = copy.deepcopy(ref)
    clf.device_ = "cuda"  # what fit sets with device="cuda" once wired
    _estimator_matches_cpu(cp, clf, ref, Xte, monkeypatch)


def test_estimator_device_cuda(cp, monkeypatch):
    Xtr, Xte, ytr = _data()
    kw = {**_BASE, **_MODELS["lsh-hidden"]}
    ref = LSHSparseMLPClassifier(**kw).fit(Xtr, ytr)
    clf = LSHSparseMLPClassifier(**kw, device="cuda").fit(Xtr, ytr)  # trains on the CPU
    assert clf.device_ == "cuda"
    _estimator_matches_cpu(cp, clf, ref, Xte, monkeypatch)


def test_topk_ranks_by_the_logits_as_the_cpu(cp, monkeypatch):
    # probabilities 745 logits apart underflow to 0 and would tie by index
    import skmach._gpu._lsh_mlp as G

    clf, Xte = _fitted("dense", False)
    z = np.full((2, clf.n_outputs_), -1000.0, np.float32)
    z[:, :4] = [[-800.0, -750.0, -900.0, 0.0], [0.0, -760.0, -750.0, -800.0]]
    monkeypatch.setattr(G, "lsh_mlp_scores", lambda *a, **kw: cp.asarray(z))
    idx, proba = G.lsh_mlp_topk(clf._net, _upload(cp, Xte[:2]), 3)
    assert idx.tolist() == [[3, 1, 0], [0, 2, 1]]
    assert proba[:, 0].tolist() == [1.0, 1.0]
