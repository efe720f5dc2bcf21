"""Host-side GPU code run on the CPU with the NumPy-backed CuPy stand-in.

Each raw kernel is replaced by its NumPy reference (``_standin.py``), so
these tests check launch geometry, chunking, key packing, padding, argument
types and selection against the CPU code; the CUDA code itself is compiled
by ``test_compile.py`` and run on a device by ``benchmarks/gpu_check.sh``.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from skmach._gpu._standin import installed
from skmach._hashing import PermutationFamily, UniversalHashFamily
from skmach.mach._scoring import candidate_classes, class_scores, topk_classes


@pytest.fixture
def cp():
    with installed() as mod:
        yield mod


def _probas(rng, n, R, B, ties=False):
    if ties:
        return (rng.integers(0, 4, (n, R, B)) / 4).astype(np.float32)
    return rng.dirichlet(np.ones(B), size=(n, R)).astype(np.float32)


def _logmean_reference(P, h, K, k):
    """CPU ranking on the mean log (float32), reported scores exp of it."""
    logP = np.log(np.maximum(P, np.float32(1e-12)))
    idx, val = topk_classes(logP, h, K, k, "mean")
    return idx, np.exp(val)


def test_standin_refuses_implicit_transfers(cp):
    x = cp.asarray(np.arange(3.0))
    with pytest.raises(TypeError):
        x + np.ones(3)
    assert isinstance(x + 1, cp.ndarray) and x.get().tolist() == [0.0, 1.0, 2.0]


def test_standin_checks_kernel_arguments(cp):
    from skmach._gpu import _scoring

    fn = _scoring._module(1).get_function("mach_class_scores")
    with pytest.raises(TypeError, match="arguments"):
        fn((1,), (32,), (cp.zeros(3, cp.float32),))
    with pytest.raises(ValueError, match="limits"):
        fn((1,), (2048,), ())


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("n,K,R,B,k,n_splits,chunk", [
    (1, 3, 1, 2, 3, None, None),        # k == K
    (5, 100, 2, 7, 1, None, None),
    (33, 1000, 4, 50, 5, None, 7),       # several sample chunks
    (7, 20_000, 8, 256, 10, None, None),  # several splits per sample
    (9, 4000, 3, 16, 8, 64, 2),
    (4, 3000, 2, 32, 200, None, None),  # k > MAX_FUSED_K: tile path
])
def test_topk_classes_gpu_matches_cpu(cp, aggregation, n, K, R, B, k, n_splits, chunk):
    from skmach._gpu import topk_classes_gpu

    rng = np.random.default_rng(n * K + k)
    P = _probas(rng, n, R, B, ties=aggregation != "logmean")
    h = UniversalHashFamily(K, B, R, rng, distinct=False)
    idx, val = topk_classes_gpu(cp.asarray(P), h.a, h.b, B, K, k, aggregation,
                                n_splits=n_splits, sample_chunk=chunk)
    assert isinstance(idx, cp.ndarray) and idx.dtype == np.int64 and val.dtype == np.float32
    ref_idx, ref_val = topk_classes(P, h, K, k, aggregation)
    np.testing.assert_array_equal(idx.get(), ref_idx)
    if aggregation == "logmean":
        np.testing.assert_allclose(val.get(), ref_val, rtol=1e-6)
    else:
        np.testing.assert_array_equal(val.get(), ref_val)


def test_logmean_ties_rank_on_mean_log(cp):
    # Many classes whose exp(mean log) tie in float32 while their mean logs
    # differ: both devices rank on the mean log.
    from skmach._gpu import topk_classes_gpu

    rng = np.random.default_rng(11)
    n, K, R, B, k = 20, 3000, 4, 64, 10
    P = (rng.integers(1, 2**10, (n, R, B)) * 1e-9).astype(np.float32)
    h = UniversalHashFamily(K, B, R, rng, distinct=False)
    ref_idx, ref_val = _logmean_reference(P, h, K, k)
    idx, val = topk_classes_gpu(cp.asarray(P), h.a, h.b, B, K, k, "logmean")
    np.testing.assert_array_equal(idx.get(), ref_idx)
    np.testing.assert_array_equal(topk_classes(P, h, K, k, "logmean")[0], ref_idx)
    np.testing.assert_allclose(val.get(), ref_val, rtol=1e-6)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
def test_class_scores_gpu_matches_cpu(cp, aggregation):
    from skmach._gpu import class_scores_gpu

    rng = np.random.default_rng(2)
    P = _probas(rng, 17, 5, 13)
    h = UniversalHashFamily(300, 13, 5, rng)
    classes = rng.permutation(300)[:120]
    got = class_scores_gpu(cp.asarray(P), h.a, h.b, 13, classes, aggregation).get()
    np.testing.assert_allclose(got, class_scores(P, h, classes, aggregation), rtol=1e-6)


def test_permutation_family(cp):
    from skmach._gpu import hash_arguments, topk_classes_gpu

    rng = np.random.default_rng(4)
    h = PermutationFamily(50, 3, rng)
    P = _probas(rng, 6, 3, 50, ties=True)
    idx, val = topk_classes_gpu(cp.asarray(P), n_classes=50, k=4, aggregation="min",
                                hash_args=hash_arguments(h))
    ref_idx, ref_val = topk_classes(P, h, 50, 4, "min")
    np.testing.assert_array_equal(idx.get(), ref_idx)
    np.testing.assert_array_equal(val.get(), ref_val)


@pytest.mark.parametrize("aggregation", ["mean", "min"])
def test_topk_candidates_gpu(cp, aggregation):
    from skmach._gpu import hash_arguments, topk_candidates_gpu

    rng = np.random.default_rng(5)
    n, R, B, K, k = 12, 4, 16, 2000, 5
    P = _probas(rng, n, R, B)
    h = UniversalHashFamily(K, B, R, rng)
    inv = [h.inverted_index(r) for r in range(R)]
    indptr, cls = candidate_classes(P, inv, 1)
    keep = np.ones(len(cls), bool)
    keep[indptr[0] + 2:indptr[1]] = False  # sample 0: 2 candidates < k -> exact
    counts = np.diff(indptr)
    counts[0] = min(counts[0], 2)
    cand = (np.concatenate([[0], np.cumsum(counts)]), cls[keep])
    idx, val = topk_candidates_gpu(cp.asarray(P), cand, k, aggregation,
                                   hash_args=hash_arguments(h))
    # reference: the best k of each sample's candidates, scored exactly
    S = class_scores(P, h, np.arange(K), aggregation)
    for i in range(n):
        c = cand[1][cand[0][i]:cand[0][i + 1]]
        if len(c) < k:
            c = np.arange(K)
        order = np.lexsort((c, -S[i, c]))[:k]
        np.testing.assert_array_equal(idx.get()[i], c[order])
        np.testing.assert_allclose(val.get()[i], S[i, c[order]], rtol=1e-6)


def test_hash_arguments_without_n_classes(cp):
    from skmach._gpu import class_scores_gpu, hash_arguments, topk_candidates_gpu, \
        topk_classes_gpu

    rng = np.random.default_rng(0)
    h = UniversalHashFamily(100, 8, 2, rng)
    ha = hash_arguments(a=h.a, b=h.b, n_buckets=8)
    assert ha["K"] is None
    P = cp.asarray(_probas(rng, 3, 2, 8))
    assert class_scores_gpu(P, classes=np.arange(5), hash_args=ha).shape == (3, 5)
    with pytest.raises(ValueError, match="n_classes"):
        topk_classes_gpu(P, k=2, hash_args=ha)
    with pytest.raises(ValueError, match="n_classes"):
        topk_candidates_gpu(P, cp.zeros((3, 4), cp.int64), 2, hash_args=ha)
    idx, _ = topk_classes_gpu(P, n_classes=100, k=2, hash_args=ha)
    np.testing.assert_array_equal(idx.get(), topk_classes(P.get(), h, 100, 2)[0])


def test_universal_buckets_gpu(cp):
    from skmach._gpu import universal_buckets_gpu

    h = UniversalHashFamily(1000, 37, 4, np.random.default_rng(3), distinct=False)
    got = universal_buckets_gpu(np.arange(1000), h.a, h.b, 37)
    np.testing.assert_array_equal(got.get(), h(np.arange(1000)))
    with pytest.raises(ValueError):
        universal_buckets_gpu([-1], h.a, h.b, 37)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool, np.float64])
def test_to_device_accepts_integer_sparse(cp, dtype):
    from skmach._gpu import to_device, to_host

    X = sp.random(7, 5, density=0.4, format="csr", random_state=0)
    X.data = (X.data * 10 + 1).astype(dtype)
    Xg = to_device(X, "cuda")
    assert Xg.data.dtype.kind == "f" and Xg.indices.dtype == np.int32
    np.testing.assert_array_equal(to_host(Xg).toarray(), X.toarray().astype(float))
    Xc = to_device(X.tocoo(), "cuda")  # other formats become CSR
    assert to_host(Xc).format == "csr"


@pytest.mark.parametrize("selection", ["union", "topk", "threshold", "sample"])
@pytest.mark.parametrize("n_neurons", [200, 300_000])  # CPU dense path, sorting path
def test_select_active_gpu_twin(cp, selection, n_neurons):
    from skmach._gpu import select_active_gpu
    from skmach.neural_network._sparse_layers import select_active

    rng = np.random.default_rng(7)
    n = 20
    q_rows = rng.integers(0, n, 3000)
    q_neurons = rng.integers(0, n_neurons, 3000) // 4
    priority = rng.random(n_neurons)
    f_rows, f_neurons = np.arange(n), rng.integers(0, n_neurons, n)
    kw = dict(selection=selection, threshold=2, n_pad=5, priority=priority)
    ref = select_active(q_rows, q_neurons, n, n_neurons, 12, forced_rows=f_rows,
                        forced_neurons=f_neurons, **kw)
    got = select_active_gpu(cp.asarray(q_rows), cp.asarray(q_neurons), n, n_neurons, 12,
                            forced_rows=cp.asarray(f_rows), forced_neurons=cp.asarray(f_neurons),
                            **kw)
    idx, mask, forced = (a.get() for a in got)
    assert idx.shape == ref[0].shape  # the same output width
    np.testing.assert_array_equal(mask, ref[1])
    np.testing.assert_array_equal(forced, ref[2])
    np.testing.assert_array_equal(idx[mask], ref[0][ref[1]])
    # training: random draws, same budget and forced neurons kept
    idx, mask, forced = (a.get() for a in select_active_gpu(
        cp.asarray(q_rows), cp.asarray(q_neurons), n, n_neurons, 12,
        forced_rows=cp.asarray(f_rows), forced_neurons=cp.asarray(f_neurons),
        rng=cp.random.RandomState(1), **kw))
    assert idx.shape[0] == n and mask.sum(axis=1).max() <= 12
    assert all(f_neurons[i] in idx[i][mask[i]] for i in range(n))


def test_select_active_sample_is_proportional():
    from skmach._gpu import select_active_gpu

    # one sample, neuron 0 collides 9 times, neuron 1 once: budget 1
    rng = np.random.default_rng(0)
    wins = 0
    for _ in range(400):
        idx, mask, _ = select_active_gpu(np.zeros(10, np.int64), np.array([0] * 9 + [1]),
                                         1, 5, 1, selection="sample", n_pad=0, rng=rng)
        wins += int(idx[0, 0] == 0)
    assert 0.8 < wins / 400 < 0.97


def test_device_cuda_without_gpu_is_a_clear_error(monkeypatch):
    import sys

    from skmach import _device

    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ValueError, match="needs CuPy"):
        _device.resolve_device("cuda")
    assert _device.resolve_device("auto") == "cpu"


def test_device_auto_stays_on_cpu_with_a_gpu(cp):
    from skmach import _device

    assert _device.cuda_available()
    assert _device.resolve_device("auto") == "cpu"
    assert _device.resolve_device("cuda") == "cuda"
