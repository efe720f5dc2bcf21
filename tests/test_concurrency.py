"""Thread safety of prediction, and failing parallel workers.

Every test that could hang if the property broke runs under a timeout: the
threads are joined with one, and the joblib failures run in a subprocess
killed after ``_TIMEOUT`` seconds (a hang is a failure, never a stuck suite).
"""

import copy
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from skmach import LSHSparseMLPClassifier, MACHClassifier

ROOT = Path(__file__).resolve().parents[1]
_TIMEOUT = 90

_rng = np.random.default_rng(0)
X = sp.random(400, 40, density=0.2, format="csr", random_state=1, dtype=np.float64)
y = _rng.integers(0, 30, 400)


def _models():
    yield "mach", MACHClassifier(n_buckets=8, n_repetitions=4, n_epochs=2, random_state=0)
    # candidate scoring builds its inverted index lazily, on the first call:
    # the threads race to build it
    yield "mach-candidates", MACHClassifier(n_buckets=8, n_repetitions=4, n_epochs=2,
                                            n_candidate_buckets=3, random_state=0)
    yield "lsh", LSHSparseMLPClassifier(hidden_layer_sizes=(32,), n_tables=4, n_bits=2,
                                        n_epochs=2, random_state=0)
    yield "lsh-output", LSHSparseMLPClassifier(hidden_layer_sizes=(32,), lsh_layers="all",
                                               output_scoring="lsh", n_tables=4, n_bits=2,
                                               active_budget=0.25, n_epochs=2, random_state=0)


@pytest.mark.parametrize("name, est", list(_models()), ids=[n for n, _ in _models()])
def test_predict_topk_from_many_threads_equals_one_call(name, est):
    est.fit(X, y)
    ref_labels, ref_scores = copy.deepcopy(est).predict_topk(X, 5)  # untouched caches
    n_threads = 8
    barrier = threading.Barrier(n_threads)

    def call(i):
        barrier.wait(timeout=_TIMEOUT)  # start together
        rows = slice(None) if i % 2 == 0 else slice(i, None)  # overlapping, different shapes
        return rows, est.predict_topk(X[rows], 5)

    with ThreadPoolExecutor(n_threads) as pool:
        futures = [pool.submit(call, i) for i in range(2 * n_threads)]
        results = [f.result(timeout=_TIMEOUT) for f in futures]
    for rows, (labels, scores) in results:
        np.testing.assert_array_equal(labels, ref_labels[rows])
        np.testing.assert_array_equal(scores, ref_scores[rows])


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from joblib import parallel_config
    from sklearn.base import BaseEstimator, ClassifierMixin
    from skmach import MACHClassifier

    class Failing(ClassifierMixin, BaseEstimator):
        def __init__(self, random_state=None):
            self.random_state = random_state
        def fit(self, X, y, sample_weight=None):
            if self.random_state is not None and self.random_state % 2 == 0:
                raise RuntimeError("worker failed on purpose")
            self.classes_ = np.unique(y)
            return self
        def predict_proba(self, X):
            return np.full((X.shape[0], len(self.classes_)), 1 / len(self.classes_))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)); y = np.arange(60) % 6
    # Some repetitions fail (those with an even seed), the others succeed.
    clf = MACHClassifier(n_buckets=4, n_repetitions=8, estimator=Failing(), n_jobs=2,
                         random_state=0)
    backend = sys.argv[1]
    try:
        if backend == "default":
            clf.fit(X, y)
        else:
            with parallel_config(backend=backend, n_jobs=2):
                clf.fit(X, y)
    except RuntimeError as exc:
        print("RAISED:", exc)
        sys.exit(0)
    print("NO ERROR")
    sys.exit(1)
""")


@pytest.mark.parametrize("backend", ["default", "threading", "loky"])
def test_failing_joblib_worker_raises_instead_of_hanging(backend):
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD, backend], cwd=ROOT,
                             capture_output=True, text=True, timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure we guard against
        pytest.fail(f"fit with a failing worker ({backend}) hung for {_TIMEOUT} s")
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "RAISED: worker failed on purpose" in res.stdout


class _Failing:
    """A classifier whose fit always raises."""

    def __init__(self):
        pass

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self

    def fit(self, X, y, sample_weight=None):
        raise RuntimeError("worker failed on purpose")

    def predict_proba(self, X):  # pragma: no cover
        raise AssertionError


def test_failed_refit_does_not_leave_a_half_updated_model():
    from sklearn.linear_model import LogisticRegression

    Xd = X.toarray()
    clf = MACHClassifier(n_buckets=8, n_repetitions=3, estimator=LogisticRegression(),
                         random_state=0).fit(Xd, y)
    before = clf.predict_topk(Xd, 3)
    clf.set_params(estimator=_Failing(), n_jobs=2)
    with pytest.raises(RuntimeError, match="on purpose"):
        clf.fit(Xd, (y + 1) % 7)
    # either the old model, intact, or a clear "not fitted" error
    try:
        after = clf.predict_topk(Xd, 3)
    except Exception as exc:  # noqa: BLE001
        from sklearn.exceptions import NotFittedError

        assert isinstance(exc, NotFittedError), exc
    else:
        np.testing.assert_array_equal(before[0], after[0])
