"""The vectorisable exponential against NumPy's."""

import numpy as np
import pytest
from numba import njit

from skmach._kernels import _lsh_train as KN
from skmach._kernels._expf import HIGH, LOW, exp_fast, exp_fast_ref


@njit
def _apply(x, out):
    for i in range(x.shape[0]):
        out[i] = exp_fast(x[i])


def _grid():
    rng = np.random.default_rng(0)
    return np.concatenate([
        np.linspace(-90.0, 89.0, 20_001), rng.normal(0.0, 5.0, 5_000),
        [0.0, -0.0, 1e-8, -1e-8, np.log(2.0), -np.log(2.0), LOW, HIGH, -88.0, -200.0, 200.0],
    ]).astype(np.float32)


def test_exp_fast_float32_matches_reference():
    x = _grid()
    out = np.empty_like(x)
    _apply(x, out)
    ref = exp_fast_ref(x.astype(np.float64))
    normal = (x >= LOW) & (x <= HIGH) & (ref >= np.finfo(np.float32).tiny)
    rel = np.abs(out[normal] - ref[normal]) / ref[normal]
    assert rel.max() < 4e-7
    assert np.all(out[x < LOW] == 0.0)
    assert np.all(np.isfinite(out)) and np.all(out >= 0)
    # clamped above HIGH, and monotone over the grid's sorted part
    assert np.all(out[x > HIGH] == out[x == HIGH][0])
    lin = out[:20_001]
    assert np.all(np.diff(lin) >= 0)
    assert out[x == 0.0][0] == 1.0


def test_exp_fast_float64_is_numpy():
    x = _grid().astype(np.float64)
    out = np.empty_like(x)
    _apply(x, out)
    np.testing.assert_allclose(out, exp_fast_ref(x), rtol=1e-15)
    # from Python it is np.exp
    assert exp_fast(np.float32(1.5)) == np.exp(np.float32(1.5))


@pytest.mark.parametrize("n", [1, 5, 15, 16, 17, 33, 100])
def test_row_max_matches_numpy(n):
    rng = np.random.default_rng(n)
    z = rng.normal(size=n).astype(np.float32) - 10.0
    assert KN._row_max(z) == z.max()
    z[-1] = 5.0  # the maximum in the tail
    assert KN._row_max(z) == 5.0
    z[0] = 7.0  # and at the start
    assert KN._row_max(z) == 7.0
