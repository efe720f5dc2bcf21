import numpy as np
import pytest
import scipy.sparse as sp

from skmach._hashing import DWTAHash, LSHTables, SimHash, make_hash_family


def _pairs_with_cosine(rng, d, cos, n):
    """n pairs (x, y) of unit vectors in R^d with <x, y> = cos."""
    x = rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    u = rng.normal(size=(n, d))
    u -= (u * x).sum(1, keepdims=True) * x
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return x, cos * x + np.sqrt(1 - cos**2) * u


def _bit_collision_rate(h, x, y):
    # one table, n_bits bits per code: compare bit by bit
    cx, cy = h.hash(x), h.hash(y)
    bits = np.arange(h.n_bits)
    bx = (cx[..., None] >> bits) & 1
    by = (cy[..., None] >> bits) & 1
    return float((bx == by).mean())


def test_simhash_collision_grows_with_cosine():
    rng = np.random.default_rng(0)
    h = SimHash(64, n_bits=16, n_tables=8, random_state=rng)
    rates = []
    for cos in [0.0, 0.5, 0.9]:
        x, y = _pairs_with_cosine(rng, 64, cos, 200)
        rates.append(_bit_collision_rate(h, x, y))
    # 1 - angle / pi: 0.5, 0.667, 0.856
    assert rates[0] < rates[1] < rates[2]
    np.testing.assert_allclose(rates, [0.5, 2 / 3, 1 - np.arccos(0.9) / np.pi], atol=0.04)


def test_dwta_collision_grows_with_rank_overlap():
    rng = np.random.default_rng(1)
    d = 64
    h = DWTAHash(d, n_bits=1, n_tables=200, bin_size=8, random_state=rng)
    x = rng.random((100, d)) + 0.01
    rates = []
    for noise in [10.0, 0.3, 0.05]:
        y = x + noise * rng.random((100, d))  # less noise: more similar ranks
        rates.append(float((h.hash(x) == h.hash(y)).mean()))
    assert rates[0] < rates[1] < rates[2]
    assert rates[0] < 0.3 and rates[2] > 0.7


def test_dwta_densifies_sparse_inputs():
    rng = np.random.default_rng(0)
    h = DWTAHash(100, n_bits=2, n_tables=20, bin_size=8, random_state=rng)
    x = np.zeros((3, 100))
    cols = h.bins[0, :3]  # three coordinates of the same bin
    x[:, cols] = [[1, 2, 3], [1, 2, 3], [3, 2, 1]]
    c = h.hash(x)
    assert c.shape == (3, 20)
    np.testing.assert_array_equal(c[0], c[1])
    assert (c[0] != c[2]).any()
    # sparse and dense inputs hash alike
    np.testing.assert_array_equal(h.hash(sp.csr_matrix(x)), c)


def test_simhash_sparse_input_matches_dense():
    rng = np.random.default_rng(0)
    h = SimHash(30, n_bits=5, n_tables=4, random_state=rng)
    x = sp.random(10, 30, density=0.2, random_state=0, format="csr")
    np.testing.assert_array_equal(h.hash(x), h.hash(x.toarray()))


@pytest.mark.parametrize("family", ["simhash", "dwta"])
def test_tables_retrieve_nearest_far_more_than_random(family):
    rng = np.random.default_rng(0)
    d, n_neurons = 32, 500
    W = rng.normal(size=(n_neurons, d))
    fam = make_hash_family(family, d, 3 if family == "dwta" else 8, 16, rng)
    t = LSHTables(fam, bucket_size=1000)
    t.build(W)
    # queries: noisy copies of known neurons
    target = rng.integers(0, n_neurons, 50)
    q = W[target] + 0.3 * rng.normal(size=(50, d))
    rows, neurons = t.query(fam.hash(q))
    counts = np.bincount(rows * n_neurons + neurons, minlength=50 * n_neurons).reshape(50, -1)
    hit_true = counts[np.arange(50), target].mean()
    hit_other = counts.sum() / counts.size
    assert hit_true > 5 * hit_other
    # the target is the single most colliding neuron for most queries
    assert (counts.argmax(1) == target).mean() > 0.7


def test_tables_update_only_changes_given_rows():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(40, 10))
    t = LSHTables(SimHash(10, n_bits=4, n_tables=3, random_state=rng))
    t.build(W)
    codes = t.codes.copy()
    W2 = W.copy()
    W2[[1, 5]] = -W[[1, 5]]
    t.update([1, 5], W2[[1, 5]])
    changed = np.flatnonzero((t.codes != codes).any(1))
    assert set(changed) <= {1, 5}
    assert t.n_hashed_ == 42
    fresh = LSHTables(t.family)
    fresh.build(W2)
    np.testing.assert_array_equal(fresh.sorted_keys, t.sorted_keys)


def test_bucket_cap():
    W = np.ones((50, 4))
    t = LSHTables(SimHash(4, n_bits=2, n_tables=2, random_state=0), bucket_size=10)
    t.build(W)
    rows, neurons = t.query(t.family.hash(np.ones((1, 4))), rng=np.random.default_rng(0))
    assert len(neurons) == 20


@pytest.mark.parametrize("n_bits", [3, 24])
def test_query_offset_table_matches_binary_search(n_bits):
    # 3 bits: small key space, bucket bounds by direct look-up; 24 bits: the
    # look-up table would be too large and query falls back to searchsorted
    rng = np.random.default_rng(0)
    W = rng.normal(size=(200, 6))
    t = LSHTables(SimHash(6, n_bits=n_bits, n_tables=5, random_state=0), bucket_size=7)
    t.build(W)
    assert (t._offsets is None) == (n_bits == 24)
    codes = t.family.hash(rng.normal(size=(30, 6)))
    a = t.query(codes)
    t._offsets = None
    b = t.query(codes)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_bad_parameters():
    with pytest.raises(ValueError, match="bin_size"):
        DWTAHash(10, 2, 2, bin_size=6)
    with pytest.raises(ValueError, match="n_bits"):
        SimHash(10, 70, 2)
    with pytest.raises(ValueError, match="hash_family"):
        make_hash_family("minhash", 10, 2, 2, 0)
