"""MACH repetitions trained on a real Dask cluster through joblib's Dask backend."""

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from skmach import MACHClassifier  # noqa: E402
from skmach.datasets import make_extreme_classification  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_fit_equals_local_fit_and_scatters_inputs_once(client):
    X, y = make_extreme_classification(n_samples=3000, n_features=400, n_classes=80,
                                       random_state=0)
    params = dict(n_buckets=16, n_repetitions=6, n_epochs=3, random_state=7)
    local = MACHClassifier(n_jobs=1, **params).fit(X, y)

    scattered = []
    real_scatter = client.scatter

    def counting_scatter(data, *args, **kwargs):
        scattered.append(data)
        return real_scatter(data, *args, **kwargs)

    client.scatter = counting_scatter
    worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
    try:
        with distributed.get_task_stream(client) as ts:
            with joblib.parallel_config(backend="dask"):
                remote = MACHClassifier(n_jobs=-1, **params).fit(X, y)
    finally:
        client.scatter = real_scatter

    # the repetitions really ran on the worker processes, in several tasks
    assert len(ts.data) >= 2
    assert len(worker_pids) == 2
    # X went to the cluster once for all the tasks that use it
    assert sum(s is X for s in scattered) == 1
    # and the model is the same as the local one, bit for bit
    np.testing.assert_array_equal(local.predict_bucket_proba(X[:200]),
                                  remote.predict_bucket_proba(X[:200]))
    np.testing.assert_array_equal(local.predict_topk(X[:200], 5)[0],
                                  remote.predict_topk(X[:200], 5)[0])
