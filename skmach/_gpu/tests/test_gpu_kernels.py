"""Tests of the CuPy kernels against their CPU references.

Every test taking the ``cp`` fixture runs twice: on the real CuPy (the
``cupy`` parameter, marked ``gpu``: ``pytest -m gpu`` selects it, and it is
skipped without CuPy and a CUDA device) and on the NumPy-backed stand-in
(the ``standin`` parameter, unmarked: it runs in the normal suite on every
commit, each raw kernel replaced by its NumPy reference, so the host-side
code of each test is exercised even where no GPU is). The other tests check
that the package imports without CuPy and test the NumPy transcriptions of
the integer and key arithmetic the CUDA code uses.

``"logmean"`` ranks on the mean of float32 logs on both devices (reported
scores are its ``exp``). CUDA's ``logf`` and NumPy's float32 ``log`` may
differ in the last place, so on a device the mean logs of two classes may
differ by a few ulp from the CPU's: :func:`_check_topk` compares the scores
with a tolerance and requires every class clearly inside the CPU top-k
(above the k-th score by more than the tolerance) to be found.
"""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from skmach._gpu._hashing import universal_buckets_reference
from skmach._gpu._scoring import pack_keys, topk_from_keys, unpack_keys
from skmach._hashing import DWTAHash, LSHTables, PermutationFamily, SimHash, UniversalHashFamily
from skmach.mach._scoring import candidate_classes, class_scores, topk_classes
from skmach.utils import topk



# --------------------------------------------------------------------------
# everywhere (no GPU)
# --------------------------------------------------------------------------

def test_import_without_cupy():
    code = (
        "import sys; sys.modules['cupy'] = None; sys.modules['cupyx'] = None\n"
        "import skmach._gpu as g\n"
        "import numpy as np\n"
        "assert g.get_xp('cpu') is np and g.array_namespace_of(np.ones(2)) is np\n"
        "assert g.to_host(np.ones(2)).shape == (2,)\n"
        "try:\n"
        "    g.universal_buckets_gpu([0], [1], [0], 2)\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('expected ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_universal_reference_matches_family():
    h = UniversalHashFamily(1000, 37, 5, np.random.default_rng(1))
    c = np.arange(1000)
    np.testing.assert_array_equal(universal_buckets_reference(c, h.a, h.b, 37), h(c))


@pytest.mark.parametrize("seed", range(5))
def test_key_packing_matches_topk(seed):
    rng = np.random.default_rng(seed)
    # few distinct values: many ties, negatives, signed zeros, infinities
    vals = np.array([-np.inf, -1.5, -0.0, 0.0, 1e-30, 0.25, 0.25000003, 3.0, np.inf], np.float32)
    S = vals[rng.integers(0, len(vals), (20, 50))]
    for k in (1, 3, 50):
        keys = pack_keys(S, np.arange(50)[None, :])
        assert all(len(np.unique(row)) == row.size for row in keys)  # distinct per row
        idx, val = unpack_keys(topk_from_keys(keys, k))
        ref_idx, ref_val = topk(S, k)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(val, ref_val)


def test_forced_constant_matches_cpu():
    from skmach._gpu._lsh import _FORCED
    from skmach.neural_network._sparse_layers import _FORCED as CPU_FORCED

    assert _FORCED == CPU_FORCED


# --------------------------------------------------------------------------
# each kernel against its CPU reference (real CuPy, and the stand-in)
# --------------------------------------------------------------------------

def _probas(rng, n, R, B, ties=False):
    if ties:  # few distinct values: many exactly tied class scores
        P = rng.integers(0, 4, (n, R, B)).astype(np.float32) / 4
    else:
        P = rng.dirichlet(np.ones(B), size=(n, R)).astype(np.float32)
    return P


def test_backend_roundtrip(cp):
    from skmach._gpu import array_namespace_of, get_xp, to_device, to_host

    assert get_xp("cuda") is cp
    X = sp.random(7, 5, density=0.4, format="csr", random_state=0, dtype=np.float32)
    Xg = to_device(X, "cuda")
    assert array_namespace_of(Xg) is cp
    back = to_host(Xg)
    assert sp.issparse(back) and (back != X).nnz == 0
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(to_host(to_device(a, "cuda")), a)
    with pytest.raises(TypeError):
        array_namespace_of(a, to_device(a, "cuda"))


@pytest.mark.parametrize("K,B,R", [(1, 2, 1), (1000, 37, 4), (100_000, 1000, 16), (70_000, 70_000, 2)])
def test_universal_buckets_gpu(cp, K, B, R):
    from skmach._gpu import universal_buckets_gpu

    h = UniversalHashFamily(K, B, R, np.random.default_rng(K), distinct=False)
    c = np.arange(K)
    got = universal_buckets_gpu(c, h.a, h.b, B)
    assert got.dtype == h(c).dtype
    np.testing.assert_array_equal(cp.asnumpy(got), h(c))
    big = np.array([0, 2**32 - 1, 2**31 + 17])  # large indices: wrapping 64-bit products
    np.testing.assert_array_equal(cp.asnumpy(universal_buckets_gpu(big, h.a, h.b, B)),
                                  universal_buckets_reference(big, h.a, h.b, B))
    with pytest.raises(ValueError):
        universal_buckets_gpu([-1], h.a, h.b, B)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("ties", [False, True])
def test_class_scores_gpu(cp, aggregation, ties):
    from skmach._gpu import class_scores_gpu

    rng = np.random.default_rng(2)
    n, R, B, K = 17, 5, 13, 300
    P = _probas(rng, n, R, B, ties)
    h = UniversalHashFamily(K, B, R, rng)
    classes = rng.permutation(K)[:120]
    ref = class_scores(P, h, classes, aggregation)
    got = cp.asnumpy(class_scores_gpu(cp.asarray(P), h.a, h.b, B, classes, aggregation))
    if aggregation == "logmean":
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_array_equal(got, ref)


# Tolerance on a float32 mean log L, relative to max(1, |L|): CUDA's logf and
# NumPy's float32 log may each be off by an ulp or two, and R of them are summed.
_LOGMEAN_RTOL = 4e-6


def _check_topk(got_idx, got_val, ref_idx, ref_val, aggregation):
    """Device top-k against the CPU's: exact for mean/min; for logmean equal
    mean logs to a tolerance, and every class clearly in the CPU top-k found
    (at the same position where its score is clear of its neighbours')."""
    got_idx, got_val = np.asarray(got_idx), np.asarray(got_val)
    assert got_idx.shape == ref_idx.shape and got_val.shape == ref_val.shape
    if aggregation != "logmean":
        np.testing.assert_array_equal(got_idx, ref_idx)
        np.testing.assert_array_equal(got_val, ref_val)
        return
    # reported scores are exp(mean log): compare the mean logs
    L_got = np.log(got_val.astype(np.float64))
    L_ref = np.log(ref_val.astype(np.float64))
    tol = _LOGMEAN_RTOL * np.maximum(1.0, np.abs(L_ref))
    assert np.all(np.abs(L_got - L_ref) <= tol), np.abs(L_got - L_ref).max()
    assert np.all(np.diff(L_got, axis=1) <= tol[:, 1:])  # best first
    for i in range(len(ref_idx)):
        assert len(np.unique(got_idx[i])) == got_idx.shape[1]
        clear = ref_idx[i][L_ref[i] > L_ref[i, -1] + 2 * tol[i]]
        missing = np.setdiff1d(clear, got_idx[i])
        assert missing.size == 0, (i, missing)
        sep = np.ones(L_ref.shape[1], bool)
        gaps = np.abs(np.diff(L_ref[i])) > 2 * tol[i, 1:]
        sep[1:] &= gaps
        sep[:-1] &= gaps
        np.testing.assert_array_equal(got_idx[i][sep], ref_idx[i][sep])


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("n,K,R,B,k", [
    (1, 3, 1, 2, 3),          # k == K
    (5, 100, 2, 7, 1),
    (33, 1000, 4, 50, 5),
    (7, 20_000, 8, 256, 10),  # several splits per sample
    (300, 5000, 3, 64, 17),   # k not a power of two
    (4, 3000, 2, 32, 200),    # k > MAX_FUSED_K: tile path
])
@pytest.mark.parametrize("ties", [False, True])
def test_topk_classes_gpu(cp, aggregation, n, K, R, B, k, ties):
    from skmach._gpu import topk_classes_gpu

    rng = np.random.default_rng(n * K + k)
    P = _probas(rng, n, R, B, ties)
    h = UniversalHashFamily(K, B, R, rng, distinct=False)
    ref_idx, ref_val = topk_classes(P, h, K, k, aggregation, working_memory_mb=1)
    idx, val = topk_classes_gpu(cp.asarray(P), h.a, h.b, B, K, k, aggregation)
    assert idx.dtype == cp.int64 and val.dtype == cp.float32
    _check_topk(cp.asnumpy(idx), cp.asnumpy(val), ref_idx, ref_val, aggregation)


@pytest.mark.parametrize("n_splits,sample_chunk", [(1, None), (3, 2), (64, 5), (None, 1)])
def test_topk_splits_and_chunks_agree(cp, n_splits, sample_chunk):
    from skmach._gpu import topk_classes_gpu

    rng = np.random.default_rng(3)
    P = _probas(rng, 9, 3, 16, ties=True)
    h = UniversalHashFamily(4000, 16, 3, rng, distinct=False)
    ref_idx, ref_val = topk_classes(P, h, 4000, 8, "mean")
    idx, val = topk_classes_gpu(cp.asarray(P), h.a, h.b, 16, 4000, 8, "mean",
                                n_splits=n_splits, sample_chunk=sample_chunk)
    np.testing.assert_array_equal(cp.asnumpy(idx), ref_idx)
    np.testing.assert_array_equal(cp.asnumpy(val), ref_val)


def test_topk_permutation_family(cp):
    from skmach._gpu import hash_arguments, topk_classes_gpu

    rng = np.random.default_rng(4)
    K, R = 50, 3
    h = PermutationFamily(K, R, rng)
    P = _probas(rng, 6, R, K, ties=True)
    ref_idx, ref_val = topk_classes(P, h, K, 4, "min")
    idx, val = topk_classes_gpu(cp.asarray(P), n_classes=K, k=4, aggregation="min",
                                hash_args=hash_arguments(h))
    np.testing.assert_array_equal(cp.asnumpy(idx), ref_idx)
    np.testing.assert_array_equal(cp.asnumpy(val), ref_val)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
def test_topk_candidates_gpu(cp, aggregation):
    from skmach._gpu import hash_arguments, topk_candidates_gpu

    rng = np.random.default_rng(5)
    n, R, B, K, k = 12, 4, 16, 2000, 5
    P = _probas(rng, n, R, B, ties=True)
    h = UniversalHashFamily(K, B, R, rng)
    inv = [h.inverted_index(r) for r in range(R)]
    indptr, cls = candidate_classes(P, inv, 1)
    # sample 0 keeps 2 candidates only (< k: scored exactly over all classes)
    keep = np.ones(len(cls), bool)
    keep[indptr[0] + 2:indptr[1]] = False
    counts = np.diff(indptr)
    counts[0] = min(counts[0], 2)
    cand = (np.concatenate([[0], np.cumsum(counts)]), cls[keep])
    ref_idx, ref_val = topk_classes(P, h, K, k, aggregation, candidates=cand)
    idx, val = topk_candidates_gpu(cp.asarray(P), cand, k, aggregation,
                                   hash_args=hash_arguments(h))
    _check_topk(cp.asnumpy(idx), cp.asnumpy(val), ref_idx, ref_val, aggregation)


@pytest.mark.parametrize("kind", ["simhash", "dwta"])
@pytest.mark.parametrize("sparse", [False, True])
def test_lsh_codes_tables_and_query(cp, kind, sparse):
    from skmach._gpu import GPUHashFamily, GPULSHTables

    rng = np.random.default_rng(6)
    d = 40
    fam = (SimHash(d, n_bits=5, n_tables=6, random_state=rng) if kind == "simhash"
           else DWTAHash(d, n_bits=3, n_tables=6, bin_size=4, random_state=rng))
    # small integers: every projection sum is exact in float32 on both sides;
    # 85% zeros exercise DWTA's densification
    W = (rng.integers(-3, 4, (300, d)) * (rng.random((300, d)) < 0.15)).astype(np.float32)
    Xq = (rng.integers(-3, 4, (50, d)) * (rng.random((50, d)) < 0.15)).astype(np.float32)
    Xin = sp.csr_matrix(Xq) if sparse else Xq
    gfam = GPUHashFamily(fam, working_memory_mb=1e-3)  # tiny: several densify blocks
    np.testing.assert_array_equal(cp.asnumpy(gfam.hash(Xin)), fam.hash(Xin))
    cpu = LSHTables(fam, bucket_size=4)
    cpu.build(W)
    gt = GPULSHTables(gfam, bucket_size=4)
    gt.build(cp.asarray(W))
    np.testing.assert_array_equal(cp.asnumpy(gt.sorted_keys), cpu.sorted_keys)
    np.testing.assert_array_equal(cp.asnumpy(gt.sorted_neurons), cpu.sorted_neurons)
    rows = np.array([3, 10, 299])
    W[rows] = -W[rows]
    cpu.update(rows, W[rows])
    gt.update(rows, cp.asarray(W[rows]))
    np.testing.assert_array_equal(cp.asnumpy(gt.sorted_neurons), cpu.sorted_neurons)
    codes = fam.hash(Xq)
    r_ref, n_ref = cpu.query(codes)
    r_got, n_got = gt.query(cp.asarray(codes))
    np.testing.assert_array_equal(cp.asnumpy(r_got), r_ref)
    np.testing.assert_array_equal(cp.asnumpy(n_got), n_ref)
    # random windows: same bucket sizes, neurons from the right buckets
    r_rand, _ = gt.query(cp.asarray(codes), rng=cp.random.RandomState(0))
    np.testing.assert_array_equal(np.bincount(cp.asnumpy(r_rand), minlength=50),
                                  np.bincount(r_ref, minlength=50))


@pytest.mark.parametrize("selection", ["union", "topk", "threshold"])
def test_select_active_gpu_deterministic(cp, selection):
    from skmach._gpu import select_active_gpu
    from skmach.neural_network._sparse_layers import select_active

    rng = np.random.default_rng(7)
    n, n_neurons = 20, 200
    q_rows = rng.integers(0, n, 3000)
    q_neurons = rng.integers(0, n_neurons, 3000) // 4  # repeated collisions
    priority = rng.random(n_neurons)
    f_rows, f_neurons = np.arange(n), rng.integers(0, n_neurons, n)
    kw = dict(selection=selection, threshold=2, n_pad=5, priority=priority)
    ref = select_active(q_rows, q_neurons, n, n_neurons, 12, forced_rows=f_rows,
                        forced_neurons=f_neurons, **kw)
    got = select_active_gpu(cp.asarray(q_rows), cp.asarray(q_neurons), n, n_neurons, 12,
                            forced_rows=cp.asarray(f_rows), forced_neurons=cp.asarray(f_neurons),
                            **kw)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(cp.asnumpy(a), b)
    idx, mask, forced = select_active_gpu(cp.asarray(q_rows), cp.asarray(q_neurons), n,
                                          n_neurons, 12, rng=cp.random.RandomState(1), **kw)
    assert int(mask.sum(axis=1).max()) <= 12
    assert idx.shape[0] == n




@pytest.mark.parametrize("fused", [True, False])  # fused top-k kernel, tile path (k > MAX_FUSED_K)
def test_logmean_ranks_on_the_mean_log(cp, fused):
    # Small probabilities: many classes whose mean logs differ by an ulp or
    # so. Both devices rank on the float32 mean log (not on its exp) and
    # report exp of it; the CPU ranking is the top-k of the mean log.
    from skmach._gpu import MAX_FUSED_K, topk_classes_gpu

    rng = np.random.default_rng(11)
    n, K, R, B = 20, 3000, 4, 64
    k = 10 if fused else MAX_FUSED_K + 3
    P = (rng.integers(1, 2**10, (n, R, B)) * 1e-9).astype(np.float32)
    h = UniversalHashFamily(K, B, R, rng, distinct=False)
    logP = np.log(np.maximum(P, np.float32(1e-12)))
    mean_idx, mean_log = topk_classes(logP, h, K, k, "mean")
    ref_idx, ref_val = topk_classes(P, h, K, k, "logmean")
    np.testing.assert_array_equal(ref_idx, mean_idx)  # the CPU ranks on the mean log
    np.testing.assert_array_equal(ref_val, np.exp(mean_log))
    idx, val = topk_classes_gpu(cp.asarray(P), h.a, h.b, B, K, k, "logmean")
    _check_topk(cp.asnumpy(idx), cp.asnumpy(val), ref_idx, ref_val, "logmean")
    if getattr(cp, "__skmach_standin__", False):  # same float32 logs: exactly the CPU's
        np.testing.assert_array_equal(idx.get(), ref_idx)
        np.testing.assert_array_equal(val.get(), ref_val)
