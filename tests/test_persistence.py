"""Saving and loading: pickle and joblib round trips, fresh processes, version stamp."""

import copy
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp

import skmach
from skmach import LSHSparseMLPClassifier, MACHClassifier
from skmach.base import InconsistentVersionWarning

ROOT = Path(__file__).resolve().parents[1]

_rng = np.random.default_rng(0)
X = sp.random(120, 30, density=0.2, format="csr", random_state=0, dtype=np.float64)
y = np.array([f"c{i}" for i in _rng.integers(0, 12, 120)])  # string labels
Y = sp.csr_matrix((_rng.random((120, 10)) < 0.3).astype(np.int64))


def _models():
    return {
        "mach": MACHClassifier(n_buckets=4, n_repetitions=3, n_epochs=2, random_state=0).fit(X, y),
        "mach-candidates": MACHClassifier(n_buckets=4, n_repetitions=3, n_epochs=2,
                                          n_candidate_buckets=2, random_state=0).fit(X, y),
        "mach-multilabel": MACHClassifier(n_buckets=4, n_repetitions=3, n_epochs=2,
                                          random_state=0).fit(X, Y),
        "lsh": LSHSparseMLPClassifier(hidden_layer_sizes=(16,), n_tables=3, n_bits=2,
                                      n_epochs=2, random_state=0).fit(X, y),
        "lsh-output": LSHSparseMLPClassifier(hidden_layer_sizes=(16,), lsh_layers="all",
                                             output_scoring="lsh", n_tables=3, n_bits=2,
                                             active_budget=0.25, n_epochs=2,
                                             random_state=0).fit(X, Y),
    }


@pytest.fixture(scope="module")
def models():
    return _models()


def _outputs(est):
    labels, scores = est.predict_topk(X, 3)
    pred = est.predict(X)
    pred = pred.toarray() if sp.issparse(pred) else pred
    return {"labels": labels, "scores": scores, "proba": est.predict_proba(X), "pred": pred}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-compressed", "deepcopy"])
def test_round_trip_gives_identical_predictions(models, tmp_path, how):
    for name, est in models.items():
        before = _outputs(est)
        if how == "pickle":
            est2 = pickle.loads(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))
        elif how == "deepcopy":
            est2 = copy.deepcopy(est)
        else:
            path = tmp_path / f"{name}.joblib"
            joblib.dump(est, path, compress=3 if how.endswith("compressed") else 0)
            est2 = joblib.load(path)
        _assert_same(before, _outputs(est2))
        # the original is untouched by pickling (no stamp leaks into it)
        assert "_skmach_version" not in vars(est)
        assert "_skmach_version" not in vars(est2)


def test_round_trip_of_a_model_still_training(tmp_path):
    """partial_fit continues the same way after a round trip."""
    a = MACHClassifier(n_buckets=4, n_repetitions=3, random_state=0)
    a.partial_fit(X[:60], y[:60], classes=np.unique(y))
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(X[60:], y[60:])
    b.partial_fit(X[60:], y[60:])
    np.testing.assert_array_equal(a.predict_bucket_proba(X), b.predict_bucket_proba(X))
    c = LSHSparseMLPClassifier(hidden_layer_sizes=(16,), n_tables=3, n_bits=2, random_state=0)
    c.partial_fit(X[:60], y[:60], classes=np.unique(y))
    d = pickle.loads(pickle.dumps(c))
    c.partial_fit(X[60:], y[60:])
    d.partial_fit(X[60:], y[60:])
    np.testing.assert_array_equal(c.predict_proba(X), d.predict_proba(X))


_CHILD = textwrap.dedent("""
    import pickle, sys, warnings
    import joblib, numpy as np
    warnings.simplefilter("error")  # any warning on load (e.g. the version one) fails
    out = {}
    for path in sys.argv[2:]:
        est = joblib.load(path) if path.endswith(".joblib") else pickle.load(open(path, "rb"))
        labels, scores = est.predict_topk(pickle.load(open(sys.argv[1], "rb")), 3)
        out[path] = (labels, scores)
    pickle.dump(out, sys.stdout.buffer)
""")


def test_fresh_process_loads_identical_models(models, tmp_path):
    """A new interpreter (nothing imported beforehand) predicts the same."""
    xpath = tmp_path / "X.pkl"
    xpath.write_bytes(pickle.dumps(X))
    paths, expected = [], {}
    for name, est in models.items():
        for fmt in ("pkl", "joblib"):
            path = str(tmp_path / f"{name}.{fmt}")
            if fmt == "pkl":
                Path(path).write_bytes(pickle.dumps(est))
            else:
                joblib.dump(est, path)
            paths.append(path)
            expected[path] = est.predict_topk(X, 3)
    res = subprocess.run([sys.executable, "-c", _CHILD, str(xpath), *paths], cwd=ROOT,
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    got = pickle.loads(res.stdout)
    for path in paths:
        np.testing.assert_array_equal(got[path][0], expected[path][0], err_msg=path)
        np.testing.assert_array_equal(got[path][1], expected[path][1], err_msg=path)


@pytest.mark.parametrize("cls", ["mach", "lsh"])
def test_state_records_the_skmach_version(models, cls):
    est = models[cls]
    state = est.__getstate__()
    assert state["_skmach_version"] == skmach.__version__
    # unfitted estimators are stamped too
    assert type(est)().__getstate__()["_skmach_version"] == skmach.__version__


@pytest.mark.parametrize("cls", ["mach", "lsh"])
def test_same_version_loads_silently(models, cls):
    blob = pickle.dumps(models[cls])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(blob)


@pytest.mark.parametrize("cls", ["mach", "lsh"])
def test_other_version_warns_and_names_both(models, monkeypatch, cls):
    est = models[cls]
    blob = pickle.dumps(est)
    monkeypatch.setattr(skmach, "__version__", "99.0.0")
    with pytest.warns(InconsistentVersionWarning) as rec:
        est2 = pickle.loads(blob)
    w = [r for r in rec if issubclass(r.category, InconsistentVersionWarning)]
    assert len(w) == 1
    msg = str(w[0].message)
    assert type(est).__name__ in msg
    assert f"skmach version {skmach._version.__version__}" in msg and "99.0.0" in msg
    assert issubclass(InconsistentVersionWarning, UserWarning)
    assert w[0].message.original_version == skmach._version.__version__
    assert w[0].message.current_version == "99.0.0"
    # the warning is a warning: the model still loads and predicts the same
    np.testing.assert_array_equal(est.predict_topk(X, 3)[0], est2.predict_topk(X, 3)[0])
    assert "_skmach_version" not in vars(est2)


def test_unstamped_state_warns_as_unknown(models):
    est = models["mach"]
    state = est.__getstate__()
    del state["_skmach_version"]
    new = MACHClassifier.__new__(MACHClassifier)
    with pytest.warns(InconsistentVersionWarning, match="unknown"):
        new.__setstate__(state)
    np.testing.assert_array_equal(est.predict(X), new.predict(X))


def test_mixin_chains_to_scikit_learn(models):
    """BaseEstimator.__getstate__/__setstate__ still run (MRO order)."""
    from sklearn.base import BaseEstimator

    from skmach.base import _VersionedStateMixin

    for cls in (MACHClassifier, LSHSparseMLPClassifier):
        mro = cls.__mro__
        assert mro.index(_VersionedStateMixin) < mro.index(BaseEstimator)
