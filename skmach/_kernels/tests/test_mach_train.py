"""The compiled MACH training kernels against their NumPy references."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmach._hashing import UniversalHashFamily
from skmach._kernels import _mach_train as k
from skmach.mach import _repetition_model as rm


def _problem(n=120, d=25, K=20, multilabel=False, sparse=True, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.2, random_state=seed, format="csr", dtype=dtype)
    if not sparse:
        X = X.toarray()
    if multilabel:
        y = sp.random(n, K, density=0.15, random_state=seed + 1, format="lil")
        y[0, :] = 0  # a sample without labels
        y = y.tocsr()
        y.data[:] = 1
    else:
        y = rng.integers(0, K, n)
    return X, y


def test_sparse_forward_matches_scipy():
    X, _ = _problem()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((X.shape[1], 7)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    for relu, fwd in [(False, k.sparse_forward), (True, k.sparse_forward_parallel)]:
        out = np.empty((X.shape[0], 7), np.float32)
        fwd(X.indptr, X.indices, X.data, W, b, relu, out)
        ref = X @ W + b
        if relu:
            ref = np.maximum(ref, 0)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss,multilabel", [("softmax", False), ("softmax", True),
                                             ("sigmoid", True)])
def test_sparse_targets_and_logit_gradients_match_reference(loss, multilabel):
    X, y = _problem(multilabel=multilabel)
    n, g, B = X.shape[0], 3, 4
    fam = UniversalHashFamily(20, B, g, np.random.default_rng(0))
    T, tw = rm.bucket_targets(y, fam, n, g, B, loss)
    tptr, tcol, tval, tw2 = rm.sparse_targets(y, fam, n, g, B, loss)
    # the sparse targets are the dense ones
    dense = np.zeros_like(T)
    cell = np.repeat(np.arange(n * g), np.diff(tptr))
    dense.reshape(n * g, B)[cell, tcol] = tval
    np.testing.assert_allclose(dense, T, rtol=1e-6)
    assert (tw is None) == (tw2 is None)
    if tw is not None:
        np.testing.assert_array_equal(tw, tw2)
    w = np.random.default_rng(2).uniform(0.5, 2, n).astype(np.float32)
    if tw is not None:
        w = w * tw
    Z = np.random.default_rng(3).standard_normal((n, g, B)).astype(np.float32) * 3
    per, dZ = rm.loss_and_grad_logits(Z.copy(), T, loss, w)
    lval = np.zeros(g)
    Zk = Z.copy()
    k.logits_grad(Zk, tptr, tcol, tval, rm._scale(w, n), loss == "softmax", lval)
    np.testing.assert_allclose(Zk, dZ, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(lval, per, rtol=1e-5)


def test_sparse_backward_adam_is_lazy_adam_on_present_rows():
    X, _ = _problem(d=40)
    X = X[:30]
    rng = np.random.default_rng(4)
    m = 6
    D = rng.standard_normal((X.shape[0], m)).astype(np.float32)
    W = rng.standard_normal((X.shape[1], m)).astype(np.float32)
    M, V = np.zeros_like(W), np.zeros_like(W)
    active = np.array([True, True, False, True, True, True])
    alpha, lr = 0.1, 0.01
    W0 = W.copy()
    slot = np.zeros(X.shape[1], np.int64)
    n_touched = k.sparse_backward_adam(X.indptr, X.indices, X.data, D, W, M, V, active,
                                       alpha, lr, 0.9, 0.999, 1e-8, slot)
    present = np.unique(X.indices)
    assert n_touched == len(present)
    assert not slot.any()  # scratch left clean
    G = np.asarray(X.T @ D) + alpha * W0
    m_ref = 0.1 * G
    v_ref = 0.001 * G * G
    W_ref = W0 - lr * m_ref / (np.sqrt(v_ref) + 1e-8)
    W_ref[:, ~active] = W0[:, ~active]
    absent = np.setdiff1d(np.arange(X.shape[1]), present)
    W_ref[absent] = W0[absent]
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-6)
    assert not M[absent].any() and not M[:, ~active].any()


@pytest.mark.parametrize("hidden", [0, 5])
@pytest.mark.parametrize("loss,multilabel", [("softmax", False), ("softmax", True),
                                             ("sigmoid", True)])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_training_with_kernels_matches_numpy_reference(hidden, loss, multilabel, sparse,
                                                       schedule):
    X, y = _problem(n=160, multilabel=multilabel, sparse=sparse, dtype=np.float64)
    fam = UniversalHashFamily(20, 4, 3, np.random.default_rng(0), distinct=False)
    cfg = rm.TrainConfig(n_buckets=4, hidden_layer_size=hidden, loss=loss, n_epochs=3,
                         batch_size=32, learning_rate=0.05, alpha=1e-2, early_stopping=False,
                         n_iter_no_change=10, tol=1e-4, learning_rate_schedule=schedule)
    orders = [np.random.default_rng(e).permutation(X.shape[0]) for e in range(3)]
    w = np.random.default_rng(9).uniform(0.5, 2, X.shape[0]).astype(np.float32)
    out = {eng: rm.train_group(X, y, w, fam, None, None, cfg, [1, 2, 3], orders, engine=eng)
           for eng in ("reference", "kernels")}
    for a, b in zip(out["reference"]["params"], out["kernels"]["params"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * np.abs(a).max())
    np.testing.assert_allclose(out["kernels"]["loss_curves"], out["reference"]["loss_curves"],
                               rtol=1e-5)
    # and training moved the weights
    init = rm.init_params(X.shape[1], 4, hidden, [1, 2, 3])
    assert not np.allclose(out["kernels"]["params"][0], init[0])
