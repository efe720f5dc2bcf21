"""Faults a production user meets: a lost Dask worker, a damaged model file,
an exception (or Ctrl-C) in the middle of training.

What each test guarantees is listed in ``docs/user_guide/guarantees.rst``
(section "Faults").
"""

import os
import pickle
import signal
import threading
import time

import joblib
import numpy as np
import pytest

from skmach import LSHSparseMLPClassifier, MACHClassifier
from skmach.datasets import make_extreme_classification


# ---------------------------------------------------------------------------
# An exception raised from inside training
# ---------------------------------------------------------------------------
class Interrupted(RuntimeError):
    """Raised by the test from inside a training loop."""


def _training_sites():
    """Functions called over and over while a model trains.

    The training loops call some of them (which ones depends on the code
    path: NumPy reference, compiled kernels, progress bar); wrapping all of
    them makes the test independent of those details.
    """
    import tqdm.std

    from skmach.mach import _repetition_model as rm
    from skmach.neural_network import _base

    sites = [(tqdm.std.tqdm, "update")]
    for name in ("step_kernels", "step_reference", "backward", "forward_fast",
                 "loss_and_grad_logits"):
        if hasattr(rm, name):
            sites.append((rm, name))
    sites.append((_base.SparseNetwork, "train_batch"))
    return sites


def _interrupt_after(monkeypatch, n_calls, exc=Interrupted):
    """Make training raise ``exc`` after ``n_calls`` calls into its loop."""
    state = {"calls": 0, "raised": 0}
    lock = threading.Lock()
    for owner, name in _training_sites():
        original = getattr(owner, name)

        def wrapper(*args, _original=original, **kwargs):
            with lock:
                state["calls"] += 1
                fire = state["calls"] > n_calls
                state["raised"] += fire
            if fire:
                raise exc("interrupted by the test")
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
    return state


def _snapshot(est, X):
    """What a user sees of a fitted model: its predictions and its state."""
    labels, scores = est.predict_topk(X, 3)
    return {
        "labels": labels, "scores": scores, "proba": est.predict_proba(X),
        "state": pickle.dumps({k: v for k, v in est.__dict__.items()
                               if k not in ("_inv_cache",)}),
        "loss_curve": np.array(est.loss_curve_, copy=True),
        "n_iter": np.array(est.n_iter_, copy=True),
    }


def _assert_same(before, after):
    np.testing.assert_array_equal(after["labels"], before["labels"])
    np.testing.assert_array_equal(after["scores"], before["scores"])
    np.testing.assert_array_equal(after["proba"], before["proba"])
    np.testing.assert_array_equal(after["loss_curve"], before["loss_curve"])
    np.testing.assert_array_equal(after["n_iter"], before["n_iter"])
    assert after["state"] == before["state"], "the fitted state changed"


def _estimators():
    return [
        pytest.param(lambda n_jobs: MACHClassifier(
            n_buckets=8, n_repetitions=4, n_epochs=6, batch_size=32, n_jobs=n_jobs,
            random_state=0), id="mach"),
        pytest.param(lambda n_jobs: MACHClassifier(
            n_buckets=8, n_repetitions=4, n_epochs=6, batch_size=32, hidden_layer_size=8,
            n_jobs=n_jobs, random_state=0), id="mach-hidden"),
        pytest.param(lambda n_jobs: LSHSparseMLPClassifier(
            hidden_layer_sizes=(16,), n_epochs=6, batch_size=32, random_state=0),
            id="lsh"),
        # an LSH hidden layer: at 2 threads its active sets are selected ahead
        # on a thread of its own (SparseNetwork.epoch_batches)
        pytest.param(lambda n_jobs: LSHSparseMLPClassifier(
            hidden_layer_sizes=(64,), lsh_layers="hidden", active_budget=0.25, n_bits=2,
            n_epochs=6, batch_size=32, n_jobs=n_jobs, random_state=0), id="lsh-hidden"),
    ]


@pytest.fixture(scope="module")
def data():
    X, y = make_extreme_classification(n_samples=400, n_features=60, n_classes=20,
                                       random_state=0)
    return X, y


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("make", _estimators())
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_interrupted_training_leaves_the_fitted_model_unchanged(
        make, method, n_jobs, data, monkeypatch):
    X, y = data
    est = make(n_jobs)
    if method == "fit":
        est.fit(X, y)
    else:
        est.partial_fit(X, y, classes=np.unique(y))
        est.partial_fit(X, y)
    before = _snapshot(est, X[:50])
    with monkeypatch.context() as m:
        state = _interrupt_after(m, n_calls=5)
        with pytest.raises(Interrupted):
            if method == "fit":
                # another data set: a refit would replace everything
                est.fit(X[::-1] * 2.0, y[::-1])
            else:
                est.partial_fit(X, y)
        assert state["raised"] >= 1, "the interruption never reached the training loop"
    _assert_same(before, _snapshot(est, X[:50]))
    # and the model still trains on as if nothing had happened
    again = make(n_jobs)
    if method == "fit":
        again.fit(X, y)
    else:
        again.partial_fit(X, y, classes=np.unique(y))
        again.partial_fit(X, y)
    getattr(est, method)(X, y)
    getattr(again, method)(X, y)
    np.testing.assert_array_equal(est.predict_topk(X[:50], 3)[0],
                                  again.predict_topk(X[:50], 3)[0])


def test_keyboard_interrupt_leaves_an_unfitted_mach_unfitted(data, monkeypatch):
    from sklearn.exceptions import NotFittedError

    X, y = data
    est = MACHClassifier(n_buckets=8, n_repetitions=2, n_epochs=4, n_jobs=1,
                         random_state=0)
    with monkeypatch.context() as m:
        _interrupt_after(m, n_calls=3, exc=KeyboardInterrupt)
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict_topk(X, 2)
    assert not hasattr(est, "classes_") and not hasattr(est, "coefs_")


# ---------------------------------------------------------------------------
# Damaged or foreign model files
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, data):
    X, y = data
    d = tmp_path_factory.mktemp("models")
    paths = []
    models = {
        "mach": MACHClassifier(n_buckets=8, n_repetitions=3, n_epochs=2, random_state=0),
        "lsh": LSHSparseMLPClassifier(hidden_layer_sizes=(8,), n_epochs=2, random_state=0),
    }
    for name, est in models.items():
        est.fit(X, y)
        for compress in (0, 3):
            path = d / f"{name}-{compress}.joblib"
            joblib.dump(est, path, compress=compress)
            paths.append(path)
    return paths


def test_truncated_model_files_never_load_as_a_damaged_model(saved_models, data, tmp_path):
    """Every truncation of a saved model raises, or gives back the whole model.

    (A compressed file missing only the last bytes of its zlib stream still
    holds every byte of the pickle: joblib loads it, and it is the model.)
    """
    X, _ = data
    for path in saved_models:
        whole = joblib.load(path)
        content = path.read_bytes()
        cut = tmp_path / f"cut-{path.name}"
        for n in sorted({int(len(content) * f) for f in (0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9,
                                                           0.99)} | {len(content) - 1}):
            cut.write_bytes(content[:n])
            try:
                model = joblib.load(cut)
            except Exception as exc:  # EOFError, ValueError, UnpicklingError, zlib/struct errors
                assert not isinstance(exc, (AssertionError, MemoryError)), (path.name, n)
                continue
            assert n >= len(content) - 8, f"{path.name} cut at {n} bytes loaded"
            np.testing.assert_array_equal(model.predict_proba(X), whole.predict_proba(X))


def test_damaged_and_foreign_files_name_the_file_in_the_cli(saved_models, tmp_path, capsys):
    """``skmach predict --model`` names the file for every bad model file."""
    from skmach import cli

    X, Y = make_extreme_classification(20, 60, 20, multilabel=True, random_state=0)
    from skmach.datasets import dump_xc

    inp = tmp_path / "in.txt"
    dump_xc(inp, X, Y)
    data = saved_models[0].read_bytes()
    bad = {
        "truncated.joblib": data[: len(data) // 3],
        "empty.joblib": b"",
        "text.joblib": b"hello, not a model\n",
        "random.joblib": np.random.default_rng(0).bytes(4096),
        "bare-estimator.joblib": data,  # a joblib file of a model, not a 'skmach fit' bundle
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        status = cli.main(["predict", "--model", str(path), "--input", str(inp), "-q"])
        out, err = capsys.readouterr()
        assert status == 2, name
        assert str(path) in err, (name, err)
        assert "Traceback" not in err and out == ""


# ---------------------------------------------------------------------------
# A Dask worker killed in the middle of a fit
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_dask_worker_killed_mid_fit_finishes_with_the_same_model_or_raises():
    distributed = pytest.importorskip("distributed")
    X, y = make_extreme_classification(n_samples=10000, n_features=500, n_classes=100,
                                       random_state=0)
    params = dict(n_buckets=16, n_repetitions=4, n_epochs=8, random_state=7)
    local = MACHClassifier(n_jobs=1, **params).fit(X, y)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    result = {}

    def fit():
        try:
            with joblib.parallel_config(backend="dask"):
                result["model"] = MACHClassifier(n_jobs=-1, **params).fit(X, y)
        except BaseException as exc:  # reported below
            result["error"] = exc

    try:
        worker = threading.Thread(target=fit, daemon=True)
        t0 = time.monotonic()
        worker.start()
        killed = None
        while killed is None and worker.is_alive() and time.monotonic() - t0 < 120:
            busy = sorted(w for w, keys in client.processing().items() if keys)
            for addr in busy:
                n_running = client.run(lambda dask_worker: len(dask_worker.state.executing),
                                       workers=[addr])[addr]
                if n_running:
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)  # no clean shutdown: the process is gone
                    killed = addr
                    break
            time.sleep(0.01)
        assert killed is not None, "no worker was ever running a repetition"
        print(f"killed at {time.monotonic() - t0:.1f}s")
        worker.join(timeout=180)
        print(f"fit done at {time.monotonic() - t0:.1f}s", result)
        assert not worker.is_alive(), "the fit hangs after a worker was killed"
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)

    if "error" in result:
        # a clear error, not a hang: Dask's KilledWorker or a lost-data error
        assert str(result["error"]), repr(result["error"])
        assert "distributed" in type(result["error"]).__module__ or "worker" in str(
            result["error"]).lower(), repr(result["error"])
    else:
        remote = result["model"]
        np.testing.assert_array_equal(local.predict_bucket_proba(X[:300]),
                                      remote.predict_bucket_proba(X[:300]))
        np.testing.assert_array_equal(local.predict_topk(X[:300], 5)[0],
                                      remote.predict_topk(X[:300], 5)[0])
