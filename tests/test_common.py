"""scikit-learn's estimator checks on every public estimator of skmach."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmach import MACHClassifier

_SGD = (
    "Minibatch training visits the samples in a random order, so weighting a "
    "sample by 2 is not the same as repeating it (as for SGDClassifier and MLPClassifier)."
)

EXPECTED_FAILED_CHECKS = {
    "MACHClassifier": {
        "check_sample_weight_equivalence_on_dense_data": _SGD,
        "check_sample_weight_equivalence_on_sparse_data": _SGD,
    },
}


def _estimators():
    yield MACHClassifier(n_buckets=4, n_repetitions=4, n_epochs=5, random_state=0)


@parametrize_with_checks(
    list(_estimators()),
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
