"""CuPy input under ``array_api_dispatch=True`` (the stand-in plays CuPy).

:func:`skmach._gpu._validation.check_prediction_input` on its own, and
``MACHClassifier.predict_topk`` / ``predict`` with CuPy X (dense and
``cupyx`` sparse) on ``device="cuda"`` against the CPU: once with the
``_check_X`` wiring given in the report applied by ``monkeypatch`` (so the
helper is proven now), once as the estimator is (``xfail`` until the lead
applies those lines to ``skmach/mach/_mach.py``).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import config_context

from skmach import MACHClassifier
from skmach._gpu._validation import check_prediction_input, is_device_input


@pytest.fixture
def dispatch(monkeypatch):
    """``array_api_dispatch=True`` (scikit-learn asks for SCIPY_ARRAY_API=1)."""
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    with config_context(array_api_dispatch=True):
        yield



def _same_memory(a, b):
    if hasattr(a, "data") and hasattr(a.data, "ptr"):  # real CuPy: device pointers
        lo, hi = a.data.ptr, a.data.ptr + a.nbytes
        return lo <= b.data.ptr < hi
    return np.shares_memory(a.view(np.ndarray), b.view(np.ndarray))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, d, K = 240, 12, 9
    centers = rng.normal(size=(K, d)) * 3
    y = rng.integers(0, K, n)
    X = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    X[np.abs(X) < 0.8] = 0  # sparse-ish, for the cupyx case
    return X[:180], X[180:], y[:180]


def _upload(cp, X, sparse):
    from skmach._gpu import to_device

    return to_device(sp.csr_matrix(X), "cuda") if sparse else cp.asarray(X)


def _Fitted():
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit(np.zeros((2, 3)), [0, 1])


# ------------------------------------------------------------ the helper

def test_host_input_is_validated_as_before():
    X = check_prediction_input(_Fitted(), [[1, 2, 3]], "cuda")
    assert type(X) is np.ndarray and X.dtype == np.float64
    with pytest.raises(ValueError, match="3 features"):
        check_prediction_input(_Fitted(), [[1, 2]], "cpu")
    assert not is_device_input(sp.eye(3)) and not is_device_input(np.ones(2))
    with pytest.raises(ValueError, match="device"):
        check_prediction_input(_Fitted(), [[1, 2, 3]], "tpu")


def test_device_input_needs_array_api_dispatch(cp):
    X = cp.ones((2, 3), cp.float32)
    assert is_device_input(X)
    with pytest.raises(TypeError, match="array_api_dispatch"):
        check_prediction_input(_Fitted(), X, "cuda")


@pytest.mark.parametrize("sparse", [False, True])
def test_device_input_stays_on_the_device(cp, dispatch, sparse):
    X0 = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], np.float32)
    X = check_prediction_input(_Fitted(), _upload(cp, X0, sparse), "cuda")
    if sparse:
        import cupyx.scipy.sparse as csp

        assert csp.issparse(X) and X.format == "csr"
        np.testing.assert_array_equal(X.get().toarray(), X0)
    else:
        assert isinstance(X, cp.ndarray) and X.dtype == np.float32
        np.testing.assert_array_equal(X.get(), X0)
    # on the CPU device the input comes to the host
    H = check_prediction_input(_Fitted(), _upload(cp, X0, sparse), "cpu")
    assert not is_device_input(H)
    np.testing.assert_array_equal(H.toarray() if sp.issparse(H) else H, X0)


def test_device_integer_input_becomes_float32(cp, dispatch):
    X = check_prediction_input(_Fitted(), cp.asarray(np.arange(6).reshape(2, 3)), "cuda")
    assert X.dtype == np.float32 and X.get().tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("bad,exc,match", [
    (np.ones((2, 4), np.float32), ValueError, "4 features"),
    (np.ones(3, np.float32), ValueError, "2D"),
    (np.ones((0, 3), np.float32), ValueError, "0 sample"),
    (np.array([[1.0, np.nan, 0.0]], np.float32), ValueError, "NaN"),
    (np.array([[1.0, np.inf, 0.0]]), ValueError, "infinity"),
    (np.ones((1, 3), np.complex64), TypeError, "real"),
])
def test_device_input_errors(cp, dispatch, bad, exc, match):
    with pytest.raises(exc, match=match):
        check_prediction_input(_Fitted(), cp.asarray(bad), "cuda")


def test_device_sparse_nan_is_refused(cp, dispatch):
    X = sp.csr_matrix(np.array([[0.0, np.nan, 1.0]], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        check_prediction_input(_Fitted(), _upload(cp, X, True), "cuda")


def test_device_input_checked_as_host_input(cp, dispatch):
    # the kernels' needs, as check_kernel_input on the host: float32's range,
    # and a sparse matrix's repeated entries summed
    with pytest.raises(ValueError, match="beyond float32's range"):
        check_prediction_input(_Fitted(), cp.asarray(np.array([[1.0, -1e39, 0.0]])), "cuda")
    dup = sp.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([1, 1], np.int32),
                         np.array([0, 2], np.int32)), shape=(1, 3))
    X = check_prediction_input(_Fitted(), _upload(cp, dup, True), "cuda")
    assert X.nnz == 1 and X.get().toarray().tolist() == [[0.0, 3.0, 0.0]]


def test_array_api_strict_input_comes_to_the_host(dispatch):
    xp = pytest.importorskip("array_api_strict")
    X = xp.asarray([[1.0, 2.0, 3.0]], device=xp.Device("device1"))
    H = check_prediction_input(_Fitted(), X, "cuda")
    assert type(H) is np.ndarray and H.tolist() == [[1.0, 2.0, 3.0]]


# ------------------------------------------------------------ MACHClassifier

def _wired_check_X(self, X):
    # the lines of the report for MACHClassifier._check_X
    from sklearn.utils.validation import check_is_fitted

    from skmach._gpu._validation import check_prediction_input

    check_is_fitted(self)
    return check_prediction_input(self, X, getattr(self, "device_", "cpu"))


def _mach_matches_cpu(cp, data, sparse, monkeypatch):
    from skmach._gpu import _estimators

    Xtr, Xte, ytr = data
    kw = dict(n_buckets=4, n_repetitions=3, n_epochs=3, random_state=0)
    cpu = MACHClassifier(**kw).fit(Xtr, ytr)
    gpu = MACHClassifier(**kw, device="cuda").fit(Xtr, ytr)
    assert gpu.device_ == "cuda"
    Xg = _upload(cp, Xte, sparse)
    seen = []
    real = _estimators.mach_bucket_proba

    def spy(X, *args, **kwargs):
        seen.append(X)
        return real(X, *args, **kwargs)

    monkeypatch.setattr(_estimators, "mach_bucket_proba", spy)
    labels, scores = gpu.predict_topk(Xg, 3)
    # the device input reaches the forward pass without a trip to the host
    # (dense: a row slice of it, sharing its memory; sparse: a cupyx matrix,
    # row slices of CSR being copies)
    if sparse:
        from skmach._gpu._backend import is_cupy_sparse

        assert all(is_cupy_sparse(x) for x in seen)
    else:
        assert _same_memory(Xg, seen[0])
    pred = gpu.predict(Xg)
    ref_labels, ref_scores = cpu.predict_topk(Xte, 3)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(pred, cpu.predict(Xte))
    assert type(labels) is np.ndarray and type(pred) is np.ndarray
    # NumPy input to the same estimator: the same answers
    np.testing.assert_array_equal(gpu.predict_topk(Xte, 3)[0], ref_labels)
    with pytest.raises(ValueError, match="features"):
        gpu.predict_topk(cp.asarray(Xte[:, :5]), 3)


@pytest.mark.parametrize("sparse", [False, True])
def test_mach_cupy_input_with_the_wiring(cp, dispatch, data, monkeypatch, sparse):
    monkeypatch.setattr(MACHClassifier, "_check_X", _wired_check_X)
    _mach_matches_cpu(cp, data, sparse, monkeypatch)


# Without the wiring, each backend fails where scikit-learn's validate_data
# mishandles its input: the stand-in's dense arrays (NumPy subclasses) are
# copied to the host, while its cupyx matrices subclass SciPy's and pass; a
# real cupyx matrix is refused, while a real CuPy array passes the array API
# path. So: dense on the stand-in, sparse on the real CuPy.
def test_mach_cupy_input(cp, dispatch, data, monkeypatch):
    standin = getattr(cp, "__skmach_standin__", False)
    _mach_matches_cpu(cp, data, not standin, monkeypatch)
