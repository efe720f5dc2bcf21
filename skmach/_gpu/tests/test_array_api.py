"""The code of :mod:`skmach._gpu` that follows its input's array namespace,
tested on every array API namespace available, as scikit-learn tests its
own array API support (``yield_namespace_device_dtype_combinations``).

On the CPU, ``array_api_strict`` (two devices) checks that only the array
API standard is used, or that what the standard lacks goes through NumPy
and comes back in the input's namespace, on the input's device. The
``cupy`` combinations are marked ``gpu`` (``pytest -m gpu`` on a device);
namespaces that are not installed are skipped, as in scikit-learn.
PyTorch and dpnp, which scikit-learn also yields, are not targets here.
"""

import importlib

import numpy as np
import pytest
from sklearn import config_context
from sklearn.utils._array_api import (
    _convert_to_numpy,
    yield_namespace_device_dtype_combinations,
)

from skmach._device import cuda_available
from skmach._gpu import array_namespace_of, select_active_gpu
from skmach._gpu._estimators import mach_bucket_proba
from skmach._gpu._scoring import pack_keys, topk_from_keys
from skmach.neural_network._sparse_layers import select_active
from skmach.utils import topk


# the namespaces skmach._gpu serves (PyTorch, dpnp: not targets)
_TARGETS = ("numpy", "array_api_strict", "cupy")


def _combinations():
    for name, device, dtype in yield_namespace_device_dtype_combinations():
        if name not in _TARGETS:
            continue
        marks = [pytest.mark.gpu] if name == "cupy" else []
        yield pytest.param((name, device, dtype), marks=marks,
                           id=f"{name}-{device}-{dtype}")


@pytest.fixture(params=list(_combinations()))
def namespace(request, monkeypatch):
    """``(xp, device, dtype)`` of one combination; skipped when unavailable.

    Run under ``array_api_dispatch=True``, as scikit-learn's own tests (the
    environment variable scikit-learn asks for is set for the test only).
    """
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    name, device_name, dtype_name = request.param
    if name == "cupy" and not cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    try:
        mod = importlib.import_module(name)
    except ImportError:
        pytest.skip(f"{name} is not installed")
    if name == "array_api_strict":
        device = mod.Device(device_name)
    else:
        device = None
    dtype = dtype_name or "float64"
    with config_context(array_api_dispatch=True):
        yield mod, device, dtype


def _to(xp, device, a, dtype=None):
    a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
    if device is None:
        return xp.asarray(a)
    return xp.asarray(a, device=device)


def _np(xp, a):
    return _convert_to_numpy(a, xp)


def _same_place(xp, device, a):
    assert array_namespace_of(a) is array_namespace_of(_to(xp, device, [1.0]))
    if device is not None:
        assert a.device == device


# --------------------------------------------------------------------------

def test_array_namespace_of(namespace):
    xp, device, dtype = namespace
    a = _to(xp, device, [1.0, 2.0])
    ns = array_namespace_of(a, None, 3, 1.5)
    assert ns.__name__.split(".")[0] in (xp.__name__, "numpy", "cupy")
    assert array_namespace_of(a, a) is ns
    if xp is not np:
        with pytest.raises(TypeError, match="mix"):
            array_namespace_of(a, np.ones(2))


@pytest.mark.parametrize("k", [1, 3, 40])
def test_topk_from_keys(namespace, k):
    xp, device, _ = namespace
    rng = np.random.default_rng(k)
    vals = np.array([-np.inf, -1.5, -0.0, 0.0, 0.25, 3.0, np.inf], np.float32)
    S = vals[rng.integers(0, len(vals), (6, 40))]
    keys = pack_keys(S, np.arange(40)[None, :])  # NumPy: the standard has no views
    got = topk_from_keys(_to(xp, device, keys), k)
    _same_place(xp, device, got)
    assert got.shape == (6, k)
    np.testing.assert_array_equal(_np(xp, got), np.sort(keys, axis=1)[:, ::-1][:, :k])
    # the keys rank as the CPU top-k: scores descending, lower index on ties
    ref_idx, _ = topk(S, k)
    np.testing.assert_array_equal(0xFFFFFFFF - (_np(xp, got) & 0xFFFFFFFF), ref_idx)


@pytest.mark.parametrize("hidden", [0, 3])
@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_mach_bucket_proba_dense(namespace, hidden, loss):
    xp, device, dtype = namespace
    rng = np.random.default_rng(hidden)
    n, d, R, B = 9, 6, 4, 5
    X = rng.normal(size=(n, d))
    if hidden:
        params = (rng.normal(size=(d, R * hidden)), rng.normal(size=R * hidden),
                  rng.normal(size=(R, hidden, B)), rng.normal(size=(R, B)))
    else:
        params = (rng.normal(size=(d, R * B)), rng.normal(size=R * B))
    params = tuple(p.astype(np.float32) for p in params)
    ref = mach_bucket_proba(X.astype(np.float32), params, B, hidden, loss)
    got = mach_bucket_proba(_to(xp, device, X, dtype=dtype),
                            tuple(_to(xp, device, p) for p in params), B, hidden, loss)
    _same_place(xp, device, got)
    assert got.shape == (n, R, B) and got.dtype == xp.float32
    np.testing.assert_allclose(_np(xp, got), ref, rtol=1e-5, atol=1e-6)
    if loss == "softmax":
        np.testing.assert_allclose(_np(xp, got).sum(axis=2), 1, rtol=1e-5)


def test_mach_bucket_proba_rejects_mixed_namespaces(namespace):
    xp, device, _ = namespace
    if xp is np:
        pytest.skip("NumPy with NumPy is not mixed")
    W, b = np.zeros((3, 4), np.float32), np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="mix"):
        mach_bucket_proba(_to(xp, device, np.ones((2, 3), np.float32)), (W, b), 2, 0,
                          "softmax")


@pytest.mark.parametrize("selection", ["union", "topk", "threshold"])
@pytest.mark.parametrize("forced", [False, True])
def test_select_active(namespace, selection, forced):
    xp, device, _ = namespace
    rng = np.random.default_rng(7)
    n, n_neurons = 15, 120
    q_rows = rng.integers(0, n, 900)
    q_neurons = rng.integers(0, n_neurons, 900) // 3
    priority = rng.random(n_neurons)
    f_rows, f_neurons = np.arange(n), rng.integers(0, n_neurons, n)
    kw = dict(selection=selection, threshold=2, n_pad=4)
    fkw = dict(forced_rows=f_rows, forced_neurons=f_neurons) if forced else {}
    ref = select_active(q_rows, q_neurons, n, n_neurons, 10, priority=priority, **fkw, **kw)
    got = select_active_gpu(_to(xp, device, q_rows), _to(xp, device, q_neurons), n,
                            n_neurons, 10, priority=_to(xp, device, priority),
                            **{k: _to(xp, device, v) for k, v in fkw.items()}, **kw)
    for a in got:
        _same_place(xp, device, a)
    idx, mask, fmask = (_np(xp, a) for a in got)
    assert idx.shape == ref[0].shape
    np.testing.assert_array_equal(mask, ref[1])
    np.testing.assert_array_equal(fmask, ref[2])
    np.testing.assert_array_equal(idx[mask], ref[0][ref[1]])
