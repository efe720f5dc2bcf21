"""Compiled LSH training kernels against their NumPy references (small cases)."""

import numpy as np
import pytest
import scipy.sparse as sp

from skmach._hashing import DWTAHash, SimHash
from skmach._kernels import _lsh_tables as KT
from skmach._kernels import _lsh_train as KN

B1, B2, EPS = 0.9, 0.999, 1e-8


def _ragged(rng, n, n_cols, max_w, dtype=np.float32):
    """Random ragged rows (distinct columns per row), as (xs, xe, xi, xv)."""
    lens = rng.integers(0, max_w + 1, n)
    xs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    xe = xs + lens
    xi = np.concatenate([rng.choice(n_cols, k, replace=False) for k in lens] or [[]])
    xv = rng.normal(size=len(xi)).astype(dtype)
    return xs, xe, xi.astype(np.int64), xv


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    n, n_in, n_out = 5, 9, 13
    W = rng.normal(size=(n_out, n_in)).astype(np.float32)
    b = rng.normal(size=n_out).astype(np.float32)
    X = rng.normal(size=(n, n_in)).astype(np.float32)
    s, e, ind, _ = _ragged(rng, n, n_out, 6)
    xr = _ragged(rng, n, n_in, 4)
    dz = rng.normal(size=len(ind)).astype(np.float32)
    return rng, W, b, X, (s, e, ind), xr, dz


def test_forward_kernels_match_reference(case):
    rng, W, b, X, (s, e, ind), (xs, xe, xi, xv), _ = case
    z = np.full(len(ind), np.nan, dtype=np.float32)
    KN.fwd_active_dense_in(W, b, X, s, e, ind, z)
    np.testing.assert_allclose(z, KN.fwd_active_dense_in_ref(W, b, X, s, e, ind), rtol=1e-5)
    # neuron by neuron (training): every slot written, the same sums bit for bit
    inv = KN.inverse_map(s, e, ind, W.shape[0])
    for n_chunks in (1, 3):
        zr = np.full(len(ind), np.nan, dtype=np.float32)
        KN.fwd_active_by_row(W, b, X, *inv, n_chunks, zr)
        np.testing.assert_array_equal(zr, z)
    # and with rows long enough for the sums to be vectorised
    W2 = rng.normal(size=(40, 130)).astype(np.float32)
    X2 = rng.normal(size=(6, 130)).astype(np.float32)
    s2, e2, ind2, _ = _ragged(rng, 6, 40, 12)
    z2, zr2 = (np.full(len(ind2), np.nan, dtype=np.float32) for _ in range(2))
    KN.fwd_active_dense_in(W2, b[:1].repeat(40), X2, s2, e2, ind2, z2)
    KN.fwd_active_by_row(W2, b[:1].repeat(40), X2, *KN.inverse_map(s2, e2, ind2, 40), 2, zr2)
    np.testing.assert_array_equal(zr2, z2)
    KN.fwd_active_ragged_in(W, b, s, e, ind, xs, xe, xi, xv, z)
    np.testing.assert_allclose(z, KN.fwd_active_ragged_in_ref(W, b, s, e, ind, xs, xe, xi, xv),
                               rtol=1e-5, atol=1e-6)
    WT = np.ascontiguousarray(W.T)
    Z = np.empty((len(xs), W.shape[0]), dtype=np.float32)
    KN.fwd_dense_ragged_in(WT, b, xs, xe, xi, xv, Z)
    np.testing.assert_allclose(Z, KN.fwd_dense_ragged_in_ref(WT, b, xs, xe, xi, xv), rtol=1e-5,
                               atol=1e-6)
    # and the dense product of the same rows
    csr = sp.csr_matrix((xv, xi, np.r_[xs, xe[-1]]), shape=(len(xs), W.shape[1]))
    np.testing.assert_allclose(Z, csr @ W.T + b, rtol=1e-5, atol=1e-6)


def test_input_gradient_kernels_match_reference(case):
    rng, W, b, X, (s, e, ind), (xs, xe, xi, xv), dz = case
    n = X.shape[0]
    dX = np.full_like(X, np.nan)
    KN.dx_active_dense(W, s, e, ind, dz, dX)
    np.testing.assert_allclose(dX, KN.dx_active_dense_ref(W, s, e, ind, dz, n), rtol=1e-5,
                               atol=1e-6)
    dxv = np.full_like(xv, np.nan)
    KN.dx_active_ragged(W, s, e, ind, dz, xs, xe, xi, dxv)
    np.testing.assert_allclose(dxv, KN.dx_active_ragged_ref(W, s, e, ind, dz, xs, xe, xi),
                               rtol=1e-5, atol=1e-6)
    WT = np.ascontiguousarray(W.T)
    dZ = rng.normal(size=(n, W.shape[0])).astype(np.float32)
    KN.dx_dense_ragged(WT, dZ, xs, xe, xi, dxv)
    np.testing.assert_allclose(dxv, KN.dx_dense_ragged_ref(WT, dZ, xs, xe, xi), rtol=1e-5,
                               atol=1e-6)


def test_inverse_map_groups_slots_by_row_in_sample_order(case):
    _, W, _, _, (s, e, ind), _, _ = case
    rows, rptr, rpos, rsam = KN.inverse_map(s, e, ind, W.shape[0])
    np.testing.assert_array_equal(rows, np.unique(ind))
    for k, r in enumerate(rows):
        pos = rpos[rptr[k]:rptr[k + 1]]
        np.testing.assert_array_equal(pos, np.flatnonzero(ind == r))
        sam = rsam[rptr[k]:rptr[k + 1]]
        assert np.all(np.diff(sam) >= 0)
        assert np.all((s[sam] <= pos) & (pos < e[sam]))


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0, 10.0])
def test_drop_small_slots_keeps_each_samples_large_gradients_in_order(case, tau):
    _, _, _, _, (s, e, ind), _, dz = case
    dz = dz.copy()
    dz[1] = np.nan  # dropped, whatever tau
    got = KN.drop_small_slots(s, e, ind, dz, np.float32(tau))
    ref = KN.drop_small_slots_ref(s, e, ind, dz, np.float32(tau))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    s2, e2, ind2, dz2 = got
    assert np.all(np.abs(dz2) >= tau) and len(dz2) == np.sum(np.abs(dz) >= tau)
    for i in range(len(s)):  # each sample keeps its own slots, in order
        k = np.abs(dz[s[i]:e[i]]) >= tau
        np.testing.assert_array_equal(ind2[s2[i]:e2[i]], ind[s[i]:e[i]][k])
    assert dz2.dtype == dz.dtype and ind2.dtype == np.int64


def _dense_grad(ind, s, e, dz, D, n_rows):
    G = np.zeros((n_rows, D.shape[1]), dtype=np.float64)
    gb = np.zeros(n_rows)
    for i in range(len(s)):
        for p in range(s[i], e[i]):
            G[ind[p]] += dz[p] * D[i]
            gb[ind[p]] += dz[p]
    return G, gb


@pytest.mark.parametrize("ragged", [False, True])
def test_fused_lazy_adam_matches_reference(case, ragged):
    rng, W, b, X, (s, e, ind), (xs, xe, xi, xv), dz = case
    if ragged:
        D = sp.csr_matrix((xv, xi, np.r_[xs, xe[-1]]), shape=X.shape).toarray()
    else:
        D = X
    M = rng.random(W.shape).astype(np.float32) * 0.1
    V = rng.random(W.shape).astype(np.float32) * 0.1
    Mb = np.zeros_like(b)
    Vb = np.zeros_like(b)
    P, Pb = W.copy(), b.copy()
    Mk, Vk, Mbk, Vbk = M.copy(), V.copy(), Mb.copy(), Vb.copy()
    alpha, lr = 0.01, 0.05
    rows, rptr, rpos, rsam = KN.inverse_map(s, e, ind, W.shape[0])
    for n_chunks in (1, 3):  # chunking must not matter
        P, Pb = W.copy(), b.copy()
        Mk, Vk, Mbk, Vbk = M.copy(), V.copy(), Mb.copy(), Vb.copy()
        if ragged:
            KN.adam_rows_ragged_src(P, Mk, Vk, Pb, Mbk, Vbk, rows, rptr, rpos, rsam, dz,
                                    xs, xe, xi, xv, alpha, lr, B1, B2, EPS, n_chunks)
        else:
            KN.adam_rows_dense_src(P, Mk, Vk, Pb, Mbk, Vbk, rows, rptr, rpos, rsam, dz, X,
                                   alpha, lr, B1, B2, EPS, n_chunks, np.zeros(0, np.int64), 1,
                                   np.zeros(0))
        if n_chunks == 1:
            first = P.copy()
        else:
            np.testing.assert_array_equal(P, first)
    G, gb = _dense_grad(ind, s, e, dz, D, W.shape[0])
    Pr, Mr, Vr = W[rows].astype(np.float64), M[rows].astype(np.float64), V[rows].astype(np.float64)
    KN.adam_ref(Pr, G[rows], Mr, Vr, alpha, lr, B1, B2, EPS)
    if ragged:
        # lazy per entry: only the columns of the contributing samples move
        present = (np.abs(D) > 0).astype(float)
        touched = _dense_grad(ind, s, e, np.ones_like(dz), present, W.shape[0])[0][rows] > 0
        Pr = np.where(touched, Pr, W[rows])
        Mr = np.where(touched, Mr, M[rows])
        assert (~touched).any()
    np.testing.assert_allclose(P[rows], Pr, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(Mk[rows], Mr, rtol=1e-4, atol=1e-6)
    bref, mb, vb = b[rows].astype(np.float64), Mb[rows].astype(np.float64), Vb[rows] * 1.0
    KN.adam_ref(bref, gb[rows], mb, vb, 0.0, lr, B1, B2, EPS)
    np.testing.assert_allclose(Pb[rows], bref, rtol=1e-4, atol=1e-6)
    untouched = np.setdiff1d(np.arange(W.shape[0]), rows)
    assert len(untouched)
    np.testing.assert_array_equal(P[untouched], W[untouched])
    np.testing.assert_array_equal(Vk[untouched], V[untouched])


def test_dense_adam_matches_reference():
    rng = np.random.default_rng(1)
    P = rng.normal(size=(4, 6)).astype(np.float32)
    G = rng.normal(size=P.shape).astype(np.float32)
    M, V = np.zeros_like(P), np.zeros_like(P)
    Pr, Mr, Vr = P.astype(np.float64), M * 1.0, V * 1.0
    KN.adam_dense(P, G, M, V, 0.1, 0.01, B1, B2, EPS)
    KN.adam_ref(Pr, G, Mr, Vr, 0.1, 0.01, B1, B2, EPS)
    # single-precision arithmetic: a parameter that moves near zero keeps an
    # absolute error of its former magnitude's rounding
    np.testing.assert_allclose(P, Pr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(V, Vr, rtol=1e-5)


def test_softmax_cross_entropy_kernels_match_reference():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(4, 7)).astype(np.float32)
    pptr = np.array([0, 1, 3, 3, 4])  # row 2 has no label: no loss, no gradient
    plab = np.array([2, 0, 5, 6])
    dZ = np.empty_like(Z)
    loss = np.empty(4)
    KN.softmax_ce_dense(Z, pptr, plab, 0.5, dZ, loss)
    lref, dref = KN.softmax_ce_dense_ref(Z.astype(np.float64), pptr, plab)
    np.testing.assert_allclose(loss, lref, rtol=1e-5)
    np.testing.assert_allclose(dZ, 0.5 * dref, rtol=1e-4, atol=1e-7)
    assert loss[2] == 0 and np.all(dZ[2] == 0)
    # the active version over every slot, labels forced, is the same thing
    s = np.arange(4) * 7
    e = s + 7
    forced = np.zeros(28, dtype=np.bool_)
    for i in range(4):
        forced[s[i] + plab[pptr[i]:pptr[i + 1]]] = True
    dz = np.empty(28, dtype=np.float32)
    la = np.empty(4)
    KN.softmax_ce_active(s, e, Z.ravel(), forced, e, np.zeros(4), 0.5, dz, la)
    np.testing.assert_allclose(la, lref, rtol=1e-5)
    np.testing.assert_allclose(dz.reshape(4, 7), 0.5 * dref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.02])
def test_dwta_kernels_match_reference(density, signed):
    rng = np.random.default_rng(3)
    n, d = 20, 40
    fam = DWTAHash(d + 1, n_bits=3, n_tables=6, random_state=rng)
    # signed: weight rows, hashed at every rebuild (negative values compete)
    X = ((rng.random((n, d)) - 0.5 * signed)
         * (rng.random((n, d)) < density)).astype(np.float32)
    X[0] = 0  # only the bias coordinate: densification everywhere
    ref = fam.hash(np.hstack([X, np.ones((n, 1), np.float32)]))
    codes = np.empty((n, 6), np.int64)
    KT.dwta_dense(X, fam.bins, fam.probes, 3, 6, codes)
    np.testing.assert_array_equal(codes, ref)
    csr = sp.csr_matrix(X)
    cptr, cent = KT.dwta_inverse(fam.bins, d + 1)
    codes2 = np.empty_like(codes)
    KT.dwta_ragged(csr.indptr[:-1].astype(np.int64), csr.indptr[1:].astype(np.int64),
                   csr.indices.astype(np.int64), csr.data, d, cptr, cent, fam.bins.shape[0],
                   fam.bin_size, fam.probes, 3, 6, codes2)
    np.testing.assert_array_equal(codes2, ref)


def test_simhash_kernels_match_reference():
    rng = np.random.default_rng(4)
    n, d = 15, 30
    fam = SimHash(d + 1, n_bits=5, n_tables=4, random_state=rng)
    X = (rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.3)).astype(np.float32)
    ref = fam.hash(np.hstack([X, np.ones((n, 1), np.float32)]))
    codes = np.empty((n, 4), np.int64)
    proj = X @ fam.projections[:-1] + fam.projections[-1]
    KT.simhash_bits(proj, 5, 4, codes)
    np.testing.assert_array_equal(codes, ref)
    csr = sp.csr_matrix(X)
    KT.simhash_ragged(csr.indptr[:-1].astype(np.int64), csr.indptr[1:].astype(np.int64),
                      csr.indices.astype(np.int64), csr.data, fam.projections, 5, 4, codes)
    np.testing.assert_array_equal(codes, ref)


def test_bounded_bucket_tables_match_reference():
    rng = np.random.default_rng(5)
    N, L, nb, cap = 60, 3, 4, 7
    buckets = rng.integers(0, nb, (N, L))
    order = rng.permutation(N)
    ptr, ids = KT.build_tables(buckets, nb, cap, order)
    ref = KT.build_tables_ref(buckets, nb, cap, order)
    for k in range(L * nb):
        assert ids[ptr[k]:ptr[k + 1]].tolist() == ref[k]
        assert ptr[k + 1] - ptr[k] <= cap
    # folding keeps codes in range
    codes = rng.integers(0, 1 << 20, (10, 3))
    f = KT.fold_codes(codes, 1 << 20, 8)
    assert f.min() >= 0 and f.max() < 256


def _run_select(ptr, ids, qb, nb, n_out, budget, n_pad, fptr, flab, selection, train, n_chunks,
                threshold=2, return_n_sel=False, fpos=None):
    n = qb.shape[0]
    fpos = np.diff(fptr) if fpos is None else fpos
    w = max(budget, int(np.diff(fptr).max()))
    idx = np.full((n, w), -1, dtype=np.int64)
    fmask = np.zeros((n, w), dtype=np.bool_)
    cnt = np.zeros(n, dtype=np.int64)
    ex = np.zeros(n, dtype=np.int64)
    di = np.zeros(n, dtype=np.int64)
    ns = np.zeros(n, dtype=np.int64)
    seeds = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(7919)
    KT.query_select(ptr, ids, qb, nb, n_out, budget, n_pad, fptr, flab, fpos,
                    selection, threshold, train, seeds, np.arange(n_out), n_chunks, idx, cnt,
                    fmask, ex, di, ns)
    if return_n_sel:
        return idx, cnt, fmask, ex, di, ns
    return idx, cnt, fmask, ex, di


def test_query_select_topk_matches_reference_and_is_thread_independent():
    rng = np.random.default_rng(6)
    N, L, nb, cap, n = 80, 6, 8, 5, 12
    buckets = rng.integers(0, nb, (N, L))
    ptr, ids = KT.build_tables(buckets, nb, cap, rng.permutation(N))
    tables = [ids[ptr[k]:ptr[k + 1]].tolist() for k in range(L * nb)]
    qb = rng.integers(0, nb, (n, L))
    fptr = np.r_[0, np.cumsum(rng.integers(0, 3, n))]
    flab = rng.integers(0, N, fptr[-1])
    budget = 6
    idx, cnt, fmask, ex, di = _run_select(ptr, ids, qb, nb, N, budget, 0, fptr, flab,
                                          KT.SEL_TOPK, False, 1)
    ref, ex_ref = KT.query_select_ref(tables, qb, nb, N, budget, fptr, flab, L)
    np.testing.assert_array_equal(ex, ex_ref)
    assert np.all(ex <= L * cap)  # never more than L buckets of cap neurons
    for i in range(n):
        got = set(idx[i, :cnt[i]].tolist())
        assert len(got) == cnt[i]
        forced = set(flab[fptr[i]:fptr[i + 1]].tolist())
        assert forced <= got
        assert set(idx[i, :cnt[i]][fmask[i, :cnt[i]]].tolist()) == forced
        if isinstance(ref[i], set):
            assert got == ref[i]
        else:
            above, ties, rem = ref[i]
            assert above <= got and len(got - above) == rem and (got - above) <= set(ties)
    for train in (False, True):
        a = _run_select(ptr, ids, qb, nb, N, budget, budget, fptr, flab, KT.SEL_TOPK, train, 1)
        b = _run_select(ptr, ids, qb, nb, N, budget, budget, fptr, flab, KT.SEL_TOPK, train, 5)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
        # padded to the budget
        assert np.all(a[1] >= budget)


@pytest.mark.parametrize("selection", [KT.SEL_TOPK, KT.SEL_SAMPLE])
@pytest.mark.parametrize("train", [False, True])
def test_query_select_reports_where_the_padding_starts(train, selection):
    rng = np.random.default_rng(8)
    N, L, nb, cap, n, budget = 200, 4, 64, 3, 30, 20
    buckets = rng.integers(0, nb, (N, L))
    ptr, ids = KT.build_tables(buckets, nb, cap, rng.permutation(N))
    qb = rng.integers(0, nb, (n, L))
    fptr = np.arange(n + 1)
    flab = rng.integers(0, N, n)
    idx, cnt, fmask, ex, di, ns = _run_select(ptr, ids, qb, nb, N, budget, budget, fptr, flab,
                                              selection, train, 3, return_n_sel=True)
    assert np.all(cnt == budget)  # at most 1 + L * cap = 13 retrieved: the rest is padding
    for i in range(n):
        retrieved = {flab[i]}
        for t in range(L):
            k = t * nb + qb[i, t]
            retrieved |= set(ids[ptr[k]:ptr[k + 1]].tolist())
        # everything retrieved fits the budget: selected = retrieved, then padding
        assert ns[i] == len(retrieved) == di[i]
        assert set(idx[i, :ns[i]].tolist()) == retrieved
        pads = set(idx[i, ns[i]:cnt[i]].tolist())
        assert len(pads) == cnt[i] - ns[i] and not pads & retrieved
        assert not fmask[i, ns[i]:cnt[i]].any()


@pytest.mark.parametrize("selection", [KT.SEL_TOPK, KT.SEL_SAMPLE])
def test_query_select_forced_negatives_are_active_but_not_positives(selection):
    """Forced neurons past ``fpos[i]`` (a label's hard negatives) are always
    in the set, counted in the selected part, and never flagged positive."""
    rng = np.random.default_rng(10)
    N, L, nb, cap, n, budget = 300, 4, 64, 3, 25, 30
    buckets = rng.integers(0, nb, (N, L))
    ptr, ids = KT.build_tables(buckets, nb, cap, rng.permutation(N))
    qb = rng.integers(0, nb, (n, L))
    n_lab = rng.integers(1, 3, n)
    n_neg = rng.integers(0, 6, n)
    fptr = np.r_[0, np.cumsum(n_lab + n_neg)]
    flab = np.concatenate([rng.choice(N, a + b, replace=False) for a, b in zip(n_lab, n_neg)])
    idx, cnt, fmask, ex, di, ns = _run_select(ptr, ids, qb, nb, N, budget, budget, fptr, flab,
                                              selection, True, 3, return_n_sel=True, fpos=n_lab)
    for i in range(n):
        forced = flab[fptr[i]:fptr[i + 1]]
        labels, negatives = set(forced[:n_lab[i]].tolist()), set(forced[n_lab[i]:].tolist())
        chosen = idx[i, :ns[i]].tolist()
        assert labels | negatives <= set(chosen)
        flagged = {o for o, f in zip(idx[i, :cnt[i]].tolist(), fmask[i, :cnt[i]]) if f}
        assert flagged == labels
    # every forced neuron a positive (the default): the flags follow
    _, _, fmask_all, _, _ = _run_select(ptr, ids, qb, nb, N, budget, budget, fptr, flab,
                                        selection, True, 3)
    assert fmask_all.sum() == len(flab)


def test_with_hard_negatives_matches_reference():
    rng = np.random.default_rng(11)
    n_out, m, n = 40, 5, 30
    neg_ids = rng.integers(-1, n_out, (n_out, m)).astype(np.int32)  # -1: an empty slot
    n_lab = rng.integers(0, 4, n)  # multi-label rows, and rows without labels
    fptr = np.r_[0, np.cumsum(n_lab)].astype(np.int64)
    flab = np.concatenate([rng.choice(n_out, k, replace=False) for k in n_lab]).astype(np.int64)
    i2 = int(np.flatnonzero(n_lab >= 2)[0])
    flab[fptr[i2] + 1] = flab[fptr[i2]]  # a repeated label stays (the positives' count)
    gptr = np.empty(n + 1, dtype=np.int64)
    glab = np.empty(len(flab) * (1 + m), dtype=np.int64)
    seen = np.zeros(n_out, dtype=np.bool_)
    for max_neg in (3, 100):
        KT.with_hard_negatives(fptr, flab, neg_ids, max_neg, gptr, glab, seen)
        ref = KT.with_hard_negatives_ref(fptr, flab, neg_ids, max_neg)
        for i in range(n):
            got = glab[gptr[i]:gptr[i + 1]].tolist()
            assert got == ref[i]
            assert got[:n_lab[i]] == flab[fptr[i]:fptr[i + 1]].tolist()  # the labels first
            assert len(set(got[n_lab[i]:])) == len(got) - n_lab[i]  # negatives once each
            assert not set(got[n_lab[i]:]) & set(got[:n_lab[i]])
            assert len(got) - n_lab[i] <= max_neg
        assert not seen.any()  # the scratch flags are left clear
        if max_neg == 3:
            assert max(len(r) - k for r, k in zip(ref, n_lab)) == 3  # the cap binds
    assert sum(len(r) for r in ref) < len(flab) * (1 + m)  # the repeats were dropped


def test_record_hard_negatives_matches_reference_and_keeps_frequent_ones():
    rng = np.random.default_rng(12)
    n_out, m, top = 30, 4, 3
    n = 50
    per = rng.integers(2, 9, n)
    s = np.r_[0, np.cumsum(per)[:-1]].astype(np.int64)
    e = s + per
    ind = np.concatenate([rng.choice(n_out, k, replace=False) for k in per]).astype(np.int64)
    z = rng.normal(size=len(ind)).astype(np.float32)
    z[::7] = 0.5  # ties
    fmask = np.zeros(len(ind), dtype=np.bool_)
    fmask[s] = True  # the first slot of each sample: its label
    pptr = np.arange(n + 1, dtype=np.int64)
    plab = ind[s].copy()
    ids = np.full((n_out, m), -1, dtype=np.int32)
    cnt = np.zeros((n_out, m), dtype=np.int32)
    ids_ref, cnt_ref = ids.copy(), cnt.copy()
    KT.record_hard_negatives(s, e, ind, z, fmask, pptr, plab, top, ids, cnt)
    KT.record_hard_negatives_ref(s, e, ind, z, fmask, pptr, plab, top, ids_ref, cnt_ref)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_array_equal(cnt, cnt_ref)
    assert cnt.sum() == sum(min(top, k - 1) for k in per)  # one count per report
    for lab in range(n_out):  # a label never lists itself (its slots are positives)
        assert lab not in ids[lab]
    # several labels per sample: they share about `top` reports (at least one each)
    n_lab = np.minimum(rng.integers(1, 5, n), per - 1)
    fmask[:] = False
    for i in range(n):
        fmask[s[i]:s[i] + n_lab[i]] = True
    pptr = np.r_[0, np.cumsum(n_lab)].astype(np.int64)
    plab = np.concatenate([ind[s[i]:s[i] + n_lab[i]] for i in range(n)])
    top = 6
    ids[:], cnt[:] = -1, 0
    ids_ref, cnt_ref = ids.copy(), cnt.copy()
    KT.record_hard_negatives(s, e, ind, z, fmask, pptr, plab, top, ids, cnt)
    KT.record_hard_negatives_ref(s, e, ind, z, fmask, pptr, plab, top, ids_ref, cnt_ref)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_array_equal(cnt, cnt_ref)
    assert cnt.sum() == sum(k * min(max(1, top // k), p - k) for k, p in zip(n_lab, per))
    # space-saving: a negative reported often stays listed among a stream of others
    ids1 = np.full((1, 2), -1, dtype=np.int32)
    cnt1 = np.zeros((1, 2), dtype=np.int32)
    for k in range(1, 40):
        # sample: label 0, the frequent negative 1 every other time, else a new one
        o = 1 if k % 2 else 100 + k
        KT.record_hard_negatives(np.array([0]), np.array([2]), np.array([0, o]),
                                 np.array([0.0, 1.0], dtype=np.float32),
                                 np.array([True, False]), np.array([0, 1]), np.array([0]),
                                 1, ids1, cnt1)
    assert 1 in ids1[0]


def test_softmax_active_padding_weight_counts_each_padding_neuron_several_times():
    """A padding slot with log-weight log(m) weighs as m copies of that slot."""
    rng = np.random.default_rng(9)
    z = rng.normal(size=6).astype(np.float32)  # slots 0-2 selected (0: label), 3-5 padding
    forced = np.array([1, 0, 0, 0, 0, 0], dtype=np.bool_)
    m = 4
    s, e, ps = np.array([0]), np.array([6]), np.array([3])
    dz = np.empty(6, dtype=np.float32)
    loss = np.empty(1)
    KN.softmax_ce_active(s, e, z, forced, ps, np.array([np.log(m)]), 1.0, dz, loss)
    # reference: the padding scores repeated m times, plain softmax
    zz = np.r_[z[:3], np.repeat(z[3:], m)].astype(np.float64)
    p = np.exp(zz - zz.max())
    p /= p.sum()
    assert loss[0] == pytest.approx(-np.log(p[0]), rel=1e-5)
    grad = np.r_[p[:3], m * p[3::m]]  # d loss / d z of a padding slot sums its m copies
    grad[0] -= 1
    np.testing.assert_allclose(dz, grad, rtol=1e-4, atol=1e-7)
    # weight 0 (log 1) is the plain softmax over the active slots
    KN.softmax_ce_active(s, e, z, forced, ps, np.zeros(1), 1.0, dz, loss)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert loss[0] == pytest.approx(-np.log(p[0]), rel=1e-5)


@pytest.mark.parametrize("selection", [KT.SEL_UNION, KT.SEL_THRESHOLD, KT.SEL_SAMPLE])
def test_query_select_other_selections(selection):
    rng = np.random.default_rng(7)
    N, L, nb, cap, n = 50, 8, 4, 50, 10
    buckets = rng.integers(0, nb, (N, L))
    ptr, ids = KT.build_tables(buckets, nb, cap, rng.permutation(N))
    qb = rng.integers(0, nb, (n, L))
    fptr = np.arange(n + 1)
    flab = rng.integers(0, N, n)
    idx, cnt, fmask, ex, di = _run_select(ptr, ids, qb, nb, N, 5, 0, fptr, flab, selection,
                                          True, 2, threshold=3)
    assert np.all(cnt <= 5) and np.all(cnt >= 1)
    for i in range(n):
        assert flab[i] in idx[i, :cnt[i]]
        assert len(set(idx[i, :cnt[i]].tolist())) == cnt[i]
        if selection == KT.SEL_THRESHOLD:
            counts = np.zeros(N, int)
            for t in range(L):
                k = t * nb + qb[i, t]
                counts[ids[ptr[k]:ptr[k + 1]]] += 1
            others = [o for o in idx[i, :cnt[i]] if o != flab[i]]
            assert all(counts[o] >= 3 for o in others)


def test_prediction_forward_kernels_match_blas(case):
    rng, W, b, X, *_ = case
    Z = np.empty((X.shape[0], W.shape[0]), dtype=np.float32)
    KN.fwd_rows_dense_in(W, b, X, Z)
    np.testing.assert_allclose(Z, X @ W.T + b, rtol=1e-5, atol=1e-5)
    Z2 = np.empty_like(Z)
    KN.fwd_cols_dense_in(np.ascontiguousarray(W.T), b, X, Z2)
    np.testing.assert_allclose(Z2, X @ W.T + b, rtol=1e-5, atol=1e-5)
    # one sample alone gives bit-identical results
    Z1 = np.empty_like(Z[:1])
    KN.fwd_cols_dense_in(np.ascontiguousarray(W.T), b, X[2:3], Z1)
    np.testing.assert_array_equal(Z1, Z2[2:3])


def _lr_at(lr):
    """Adam's bias-corrected step size of step ``u``."""
    return lambda u: lr * np.sqrt(1 - B2 ** np.maximum(u, 1)) / (1 - B1 ** np.maximum(u, 1))


def test_catch_up_table_sums_the_step_sizes_of_the_skipped_steps():
    lr_at = _lr_at(0.01)
    F = KN.catch_up_table(lr_at, 50, B1, B2)
    q = B1 / np.sqrt(B2)
    for t in (0, 3, 49):
        s = np.arange(1, 2000)
        np.testing.assert_allclose(F[t], np.sum(lr_at(t + s) * q ** s), rtol=1e-12)
    assert len(F) == 51


@pytest.mark.parametrize("last, t", [(2, 1000), (10, 300), (200, 260), (3, 12)])
def test_adam_catch_up_equals_the_skipped_zero_gradient_steps(last, t):
    # early steps have much smaller step sizes (bias correction): a row last
    # updated at step 2 and caught up at step 1000 must take them as they were
    rng = np.random.default_rng(10)
    n_rows, k = 6, 5
    P = rng.normal(size=(n_rows, k)).astype(np.float32)
    M = (0.1 * rng.normal(size=(n_rows, k))).astype(np.float32)
    V = (0.01 * rng.random((n_rows, k))).astype(np.float32)
    V[0, 0] = M[0, 0] = 0  # never updated entry: stays as it is
    b, Mb, Vb = P[:, 0].copy(), M[:, 0].copy(), V[:, 0].copy()
    lasts = np.array([last, last, t - 1, last + 1, 7, 10], dtype=np.int64)  # row 2: none skipped
    rows = np.array([0, 1, 2, 3], dtype=np.int64)  # rows 4, 5 not touched now
    lr_at = _lr_at(0.01)
    want = [P.astype(np.float64).copy(), M.astype(np.float64).copy(), V.astype(np.float64)]
    want_b = [b.astype(np.float64).copy(), Mb.astype(np.float64).copy(), Vb * 1.0]
    for r in rows:
        skipped = t - lasts[r] - 1
        KN.adam_catch_up_ref(*(w[r] for w in want), lasts[r], skipped, lr_at, B1, B2, EPS)
        KN.adam_catch_up_ref(*(w[r:r + 1] for w in want_b), lasts[r], skipped, lr_at, B1, B2,
                             EPS)
    before = P.copy()
    F = KN.catch_up_table(lr_at, t, B1, B2)
    KN.adam_catch_up(P, M, V, b, Mb, Vb, rows, lasts, t, F, B1, B2, EPS)
    np.testing.assert_allclose(P, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(M, want[1], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(V, want[2], rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(b, want_b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lasts, [t, t, t, t, 7, 10])
    np.testing.assert_array_equal(P[2], before[2])  # nothing skipped
    np.testing.assert_array_equal(P[4:], before[4:])  # not touched
    assert P[0, 0] == before[0, 0]
    assert not np.allclose(P[1], before[1])  # the skipped steps moved it


def test_adam_catch_up_with_moments_below_eps_stays_close_to_adam():
    # sqrt(v) ~ eps: Adam's eps damps the steps; the closed form adds eps to
    # the undecayed root, which overshoots by at most 1 / b2**(s/2) per step
    lr_at = _lr_at(0.01)
    P = np.zeros((1, 4), dtype=np.float32)
    M = np.full((1, 4), 1e-9, dtype=np.float32)
    V = np.array([[1e-18, 1e-16, 1e-14, 1e-20]], dtype=np.float32)
    want = [P.astype(np.float64), M.astype(np.float64), V.astype(np.float64)]
    KN.adam_catch_up_ref(*(w[0] for w in want), 100, 499, lr_at, B1, B2, EPS)
    F = KN.catch_up_table(lr_at, 600, B1, B2)
    KN.adam_catch_up(P, M, V, P[:, 0].copy(), M[:, 0].copy(), V[:, 0].copy(),
                     np.array([0]), np.array([100]), 600, F, B1, B2, EPS)
    np.testing.assert_allclose(P[0], want[0][0], rtol=0.15)
    assert np.all(np.abs(P[0]) <= 1.15 * np.abs(want[0][0]))


def test_fused_catch_up_equals_catch_up_then_step():
    rng = np.random.default_rng(11)
    n_out, k, n = 12, 5, 4
    P0 = rng.normal(size=(n_out, k)).astype(np.float32)
    M0 = (0.1 * rng.normal(size=(n_out, k))).astype(np.float32)
    V0 = (0.01 * rng.random((n_out, k))).astype(np.float32)
    b0, Mb0, Vb0 = P0[:, 0].copy(), M0[:, 1].copy(), V0[:, 2].copy()
    last0 = rng.integers(0, 20, n_out).astype(np.int64)
    ind = rng.integers(0, n_out, n * 3).astype(np.int64)
    s = np.arange(n, dtype=np.int64) * 3
    e = s + 3
    dz = rng.normal(size=n * 3).astype(np.float32)
    D = rng.random((n, k)).astype(np.float32)
    rows, rptr, rpos, rsam = KN.inverse_map(s, e, ind, n_out)
    step, lr = 25, 0.01
    F = KN.catch_up_table(_lr_at(lr), step, B1, B2)
    a = [x.copy() for x in (P0, M0, V0, b0, Mb0, Vb0, last0)]
    KN.adam_rows_dense_src(*a[:6], rows, rptr, rpos, rsam, dz, D, 0.01, lr, B1, B2, EPS, 2,
                           a[6], step, F)
    b = [x.copy() for x in (P0, M0, V0, b0, Mb0, Vb0, last0)]
    KN.adam_catch_up(*b[:6], rows, b[6], step, F, B1, B2, EPS)
    KN.adam_rows_dense_src(*b[:6], rows, rptr, rpos, rsam, dz, D, 0.01, lr, B1, B2, EPS, 2,
                           np.zeros(0, np.int64), step, F)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    assert np.all(a[6][rows] == step) and not np.any(a[0][rows] == P0[rows])


@pytest.mark.parametrize("n_chunks", [1, 3])
def test_rerank_select_keeps_the_best_sketch_scores(n_chunks):
    rng = np.random.default_rng(11)
    n_out, m, n, w, budget = 40, 13, 9, 12, 5
    # integer-valued sketches: the scores are exact in float32, ties included
    S = rng.integers(-3, 4, (n_out, m)).astype(np.float32)
    S0 = rng.integers(-3, 4, n_out).astype(np.float32)
    Q = rng.integers(-2, 3, (n, m)).astype(np.float32)
    idx = np.stack([rng.permutation(n_out)[:w] for _ in range(n)]).astype(np.int64)
    cnt = rng.integers(0, w + 1, n).astype(np.int64)
    cnt[:3] = [w, budget, 2]  # over, at and under the budget
    out = np.full((n, budget), -1, dtype=np.int64)
    out_cnt = np.zeros(n, dtype=np.int64)
    KT.rerank_select(S, S0, Q, idx, cnt, budget, n_chunks, out, out_cnt)
    ref = KT.rerank_select_ref(S, S0, Q, idx, cnt, budget)
    for i in range(n):
        assert out_cnt[i] == min(cnt[i], budget)
        np.testing.assert_array_equal(out[i, :out_cnt[i]], ref[i])
    # the kept scores are the largest ones
    i = 0
    kept = S0[out[i]] + S[out[i]] @ Q[i]
    dropped = np.setdiff1d(idx[i], out[i])
    assert kept.min() >= (S0[dropped] + S[dropped] @ Q[i]).max()


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("n_chunks", [1, 4])
def test_query_rerank_is_query_select_then_rerank_select(train, n_chunks):
    # the fused kernel of a re-ranking first layer: the same candidates, the
    # same kept neurons, the same counts as the two kernels in turn
    rng = np.random.default_rng(14)
    N, L, nb, cap, n, m, budget, n_cand = 120, 4, 64, 3, 40, 9, 4, 8
    buckets = rng.integers(0, nb, (N, L))
    ptr, ids = KT.build_tables(buckets, nb, cap, rng.permutation(N))
    qb = rng.integers(0, nb, (n, L))
    qb[0] = 0  # shared buckets: collisions above one
    S = rng.normal(size=(N, m)).astype(np.float32)
    S0 = rng.normal(size=N).astype(np.float32)
    Q = rng.normal(size=(n, m)).astype(np.float32)
    fptr = np.zeros(n + 1, dtype=np.int64)
    flab = np.zeros(0, dtype=np.int64)
    n_pad = budget
    idx, cnt, _, ex, di = _run_select(ptr, ids, qb, nb, N, n_cand, n_pad, fptr, flab,
                                      KT.SEL_TOPK, train, n_chunks)
    assert np.any(cnt < n_cand) and np.any(cnt == n_cand)  # both sides of the cap
    out = np.full((n, budget), -1, dtype=np.int64)
    out_cnt = np.zeros(n, dtype=np.int64)
    KT.rerank_select(S, S0, Q, idx, cnt, budget, n_chunks, out, out_cnt)
    seeds = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(7919)
    f_out = np.full((n, budget), -1, dtype=np.int64)
    f_cnt, f_c, f_ex, f_di = (np.zeros(n, dtype=np.int64) for _ in range(4))
    KT.query_rerank(ptr, ids, qb, nb, N, n_cand, n_pad, fptr, flab, np.diff(fptr),
                    KT.SEL_TOPK, 2, train, seeds, np.arange(N), S, S0, Q, budget, n_chunks,
                    f_out, f_cnt, f_c, f_ex, f_di)
    for a, b in ((f_cnt, out_cnt), (f_c, cnt), (f_ex, ex), (f_di, di)):
        np.testing.assert_array_equal(a, b)
    for i in range(n):
        np.testing.assert_array_equal(f_out[i, :f_cnt[i]], out[i, :out_cnt[i]])


def test_sketch_ragged_matches_reference():
    rng = np.random.default_rng(12)
    xs, xe, xi, xv = _ragged(rng, 7, 15, 6)
    U = rng.normal(size=(15, 3)).astype(np.float32)
    shift = rng.normal(size=3).astype(np.float32)
    Q = np.empty((7, 3), dtype=np.float32)
    KT.sketch_ragged(xs, xe, xi, xv, U, shift, Q)
    np.testing.assert_allclose(Q, KT.sketch_ragged_ref(xs, xe, xi, xv, U, shift),
                               rtol=1e-5, atol=1e-5)


def test_rerank_select_does_not_depend_on_where_the_sketches_lie_in_memory():
    # its sums are reassociated (vector lanes): the order must not follow the
    # rows' alignment, or two processes could keep different neurons
    rng = np.random.default_rng(13)
    n_out, m, n, w, budget = 300, 33, 16, 120, 10
    S = rng.normal(size=(n_out, m)).astype(np.float32)
    S0 = rng.normal(size=n_out).astype(np.float32)
    Q = rng.normal(size=(n, m)).astype(np.float32)
    idx = np.stack([rng.permutation(n_out)[:w] for _ in range(n)]).astype(np.int64)
    cnt = np.full(n, w, dtype=np.int64)

    def run(S, Q):
        out = np.zeros((n, budget), dtype=np.int64)
        out_cnt = np.zeros(n, dtype=np.int64)
        KT.rerank_select(S, S0, Q, idx, cnt, budget, 1, out, out_cnt)
        return out

    ref = run(S, Q)
    for off in range(1, 8):  # float32 offsets: every alignment of the rows
        bs = np.zeros(S.size + 8, dtype=np.float32)
        bq = np.zeros(Q.size + 8, dtype=np.float32)
        S2 = bs[off:off + S.size].reshape(S.shape)
        Q2 = bq[off:off + Q.size].reshape(Q.shape)
        S2[:] = S
        Q2[:] = Q
        np.testing.assert_array_equal(run(S2, Q2), ref)


def test_kth_largest_matches_sorting():
    rng = np.random.default_rng(14)
    for trial in range(300):
        n = int(rng.integers(1, 60))
        k = int(rng.integers(1, n + 1))
        # ties (small integers) and distinct values alike
        a = (rng.integers(-3, 4, n) if trial % 2 else rng.normal(size=n)).astype(np.float32)
        assert KT.kth_largest(a.copy(), n, k) == np.sort(a)[::-1][k - 1]


@pytest.mark.parametrize("budget", [3, 6, 10])
def test_query_select_when_every_neuron_is_retrieved_in_every_table(budget):
    # one bucket per table holding every neuron: the candidate list fills
    # up in the first table and every later entry is a repeat
    N, L = 6, 4
    ptr, ids = KT.build_tables(np.zeros((N, L), dtype=np.int64), 1, N, np.arange(N))
    qb = np.zeros((3, L), dtype=np.int64)
    fptr = np.zeros(4, dtype=np.int64)
    for train in (False, True):
        idx, cnt, fmask, ex, di = _run_select(ptr, ids, qb, 1, N, budget, 0, fptr,
                                              np.zeros(0, dtype=np.int64), KT.SEL_TOPK,
                                              train, 1)
        np.testing.assert_array_equal(ex, N * L)
        np.testing.assert_array_equal(di, N)
        np.testing.assert_array_equal(cnt, min(budget, N))
        for i in range(3):
            assert len(set(idx[i, :cnt[i]].tolist())) == cnt[i]
            assert set(idx[i, :cnt[i]].tolist()) <= set(range(N))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_prefetch_row_compiles_for_any_2d_array_and_changes_nothing(dtype):
    from numba import njit

    from skmach._kernels._prefetch import prefetch, prefetch_row

    @njit
    def touch_all(A):
        tot = 0.0
        for r in range(A.shape[0]):
            prefetch_row(A, r)
            prefetch(A, r, A.shape[1] - 1)
            for j in range(A.shape[1]):
                tot += A[r, j]
        return tot

    A = np.arange(5 * 37, dtype=dtype).reshape(5, 37)
    before = A.copy()
    assert touch_all(A) == pytest.approx(float(A.sum()))
    assert touch_all(A[:, ::3]) == pytest.approx(float(A[:, ::3].sum()))  # strided view
    np.testing.assert_array_equal(A, before)



@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("data_dtype", [np.float64, np.float32, np.bool_])
def test_take_rows_matches_scipy_row_indexing(index_dtype, data_dtype):
    rng = np.random.default_rng(0)
    X = sp.random(30, 17, density=0.3, format="csr", random_state=1)
    X.data = (X.data * 10).astype(data_dtype)
    X.indptr, X.indices = X.indptr.astype(index_dtype), X.indices.astype(index_dtype)
    X.indices[X.indptr[3]:X.indptr[4]] = X.indices[X.indptr[3]:X.indptr[4]][::-1]  # unsorted
    for rows in (rng.integers(0, 30, 12), np.array([4, 3, 3, 0, 29]), np.zeros(0, np.int64)):
        ptr, xi, xv = KN.take_rows(X.indptr, X.indices, X.data, rows)
        for got, want in zip((ptr, xi, xv), KN.take_rows_ref(X, rows)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        ptr2, xi2, xv2 = KN.take_rows(X.indptr, X.indices, np.zeros(0, np.float32), rows)
        np.testing.assert_array_equal(ptr2, ptr)
        np.testing.assert_array_equal(xi2, xi)
        assert len(xv2) == 0


def test_batch_activation_is_as_activation_of_the_rows():
    from skmach.neural_network._base import as_activation, batch_activation

    rng = np.random.default_rng(0)
    X = sp.random(40, 9, density=0.4, format="csr", random_state=2)
    rows = rng.permutation(40)[:15]
    for M in (X, X.toarray()):
        a, b = batch_activation(M, rows), as_activation(M[rows])
        assert a[0] == b[0] and len(a) == len(b)
        for u, v in zip(a[1:], b[1:]):
            assert u.dtype == v.dtype and u.flags.c_contiguous
            np.testing.assert_array_equal(u, v)
