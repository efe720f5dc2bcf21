import numpy as np
import pytest
import scipy.sparse as sp

from skmach._hashing import UniversalHashFamily
from skmach.mach import _repetition_model as rm


def _data(n=40, d=12, K=9, multilabel=False, sparse=True, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    if not sparse:
        X = X.toarray()
    if multilabel:
        y = sp.random(n, K, density=0.25, random_state=seed + 1, format="csr")
        y.data[:] = 1
        y = y.astype(np.float32)
    else:
        y = rng.integers(0, K, n)
    return X, y


def _loss(X, y, params, fam, B, H, loss):
    Z, _ = rm.forward(X, params, B, H)
    T, w = rm.bucket_targets(y, fam, X.shape[0], fam.n_repetitions, B, loss)
    per, _ = rm.loss_and_grad_logits(Z, T, loss, w)
    return float(per.sum())


@pytest.mark.parametrize("hidden", [0, 5])
@pytest.mark.parametrize("loss,multilabel", [("softmax", False), ("softmax", True), ("sigmoid", True)])
def test_gradients_match_finite_differences(hidden, loss, multilabel):
    X, y = _data(multilabel=multilabel, sparse=False)
    X = X.astype(np.float64)
    B, g = 4, 3
    fam = UniversalHashFamily(9, B, g, np.random.default_rng(0))
    params = [p.astype(np.float64) for p in rm.init_params(X.shape[1], B, hidden, [1, 2, 3])]
    rng = np.random.default_rng(5)
    for p in params:
        p += 0.1 * rng.standard_normal(p.shape)
    Z, A = rm.forward(X, params, B, hidden)
    T, w = rm.bucket_targets(y, fam, X.shape[0], g, B, loss)
    _, dZ = rm.loss_and_grad_logits(Z, T, loss, w)
    grads = rm.backward(X, params, A, dZ, B, hidden, 0.0)
    eps = 1e-6
    for p, gr in zip(params, grads):
        for idx in list(np.ndindex(p.shape))[:: max(1, p.size // 15)]:
            old = p[idx]
            p[idx] = old + eps
            up = _loss(X, y, params, fam, B, hidden, loss)
            p[idx] = old - eps
            down = _loss(X, y, params, fam, B, hidden, loss)
            p[idx] = old
            assert abs((up - down) / (2 * eps) - gr[idx]) < 1e-5 * max(1, abs(gr[idx]))


@pytest.mark.parametrize("hidden", [0, 4])
@pytest.mark.parametrize("sparse", [True, False])
def test_group_training_equals_separate_training(hidden, sparse):
    """A repetition's weights do not depend on the group it was trained in."""
    X, y = _data(n=60, sparse=sparse)
    B, R = 4, 4
    fam = UniversalHashFamily(9, B, R, np.random.default_rng(0))
    cfg = rm.TrainConfig(B, hidden, "softmax", 3, 16, 0.05, 1e-3, False, 2, 1e-4)
    seeds = np.arange(R) + 10
    orders = [np.random.default_rng(e).permutation(60) for e in range(3)]
    joint = rm.train_group(X, y, None, fam, None, None, cfg, seeds, orders)["params"]
    parts = [
        rm.train_group(X, y, None, fam.subset(r, r + 1), None, None, cfg, seeds[r:r + 1], orders)["params"]
        for r in range(R)
    ]
    for a, b in zip(joint, rm.concat_params(parts, hidden)):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_freezes_each_repetition_independently():
    X, y = _data(n=80)
    B, R = 4, 3
    fam = UniversalHashFamily(9, B, R, np.random.default_rng(0))
    cfg = rm.TrainConfig(B, 0, "softmax", 30, 16, 0.2, 0.0, True, 2, 1e-3)
    orders = [np.random.default_rng(e).permutation(np.arange(10, 80)) for e in range(30)]
    res = rm.train_group(X, y, None, fam, None, None, cfg, [1, 2, 3], orders,
                         val_index=np.arange(10))
    assert res["n_iter"].max() < 30
    assert res["validation_curves"].shape[1] == R


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("multilabel", [False, True])
def test_minibatches_follow_order_chunk_by_chunk(sparse, multilabel):
    X, y = _data(n=41, sparse=sparse, multilabel=multilabel)
    w = np.arange(41, dtype=np.float32)
    order = np.random.default_rng(3).permutation(41)
    # chunks of 6 rows (two batches of 3), the last chunk and batch shorter
    got = list(rm._minibatches(X, y, w, order, batch_size=3, chunk_rows=7))
    assert [s for s, *_ in got] == list(range(0, 41, 3))

    def dense(M):
        return M.toarray() if sp.issparse(M) else M

    for s, Xb, yb, wb in got:
        idx = order[s:s + 3]
        np.testing.assert_array_equal(dense(Xb), dense(X[idx]))
        np.testing.assert_array_equal(dense(yb), dense(y[idx]))
        np.testing.assert_array_equal(wb, w[idx])
    assert all(b[3] is None for b in rm._minibatches(X, y, None, order, 5))
