"""Mixins shared by the skmach estimators.

:class:`_VersionedStateMixin` stamps the pickled state of an estimator with
the skmach version that produced it, and warns when the state is loaded by
another version (the fitted attributes are private and may change between
versions, so a model should be re-fitted, or at least re-validated, after an
upgrade). scikit-learn does the same for its own estimators only (the
``_sklearn_version`` stamp is written for classes whose module starts with
``sklearn.``), hence this mixin.
"""

import warnings
from numbers import Integral

from sklearn.utils._param_validation import Interval

__all__ = ["InconsistentVersionWarning"]

#: ``_parameter_constraints`` entry of ``n_jobs``: joblib's meaning (-1, -2,
#: ... count back from the cores); 0 has none
N_JOBS_CONSTRAINT = [Interval(Integral, None, -1, closed="right"),
                     Interval(Integral, 1, None, closed="left"), None]

_VERSION_KEY = "_skmach_version"
_UNKNOWN = "unknown (no version stamp)"


class InconsistentVersionWarning(UserWarning):
    """A model pickled by one skmach version is loaded by another.

    Parameters
    ----------
    estimator_name : str
        Class name of the estimator being unpickled.
    original_version : str
        skmach version that pickled it (``"unknown (no version stamp)"`` for
        pickles without a stamp).
    current_version : str
        skmach version loading it.
    """

    def __init__(self, *, estimator_name, original_version, current_version):
        self.estimator_name = estimator_name
        self.original_version = original_version
        self.current_version = current_version

    def __str__(self):
        return (
            f"Trying to unpickle estimator {self.estimator_name} from skmach version "
            f"{self.original_version} when using skmach version {self.current_version}. "
            "This might lead to breaking code or invalid results. Use at your own risk; "
            "re-fitting the model with the current version is the safe option."
        )


class _VersionedStateMixin:
    """Record ``skmach.__version__`` in the pickled state; warn on mismatch.

    Put it before :class:`sklearn.base.BaseEstimator` in the bases: both
    methods chain to ``super()``, so scikit-learn's own state handling still
    runs.
    """

    def __getstate__(self):
        from . import __version__

        state = super().__getstate__()
        # BaseEstimator may hand back ``self.__dict__`` itself: never mutate it.
        return dict(state, **{_VERSION_KEY: __version__})

    def __setstate__(self, state):
        from . import __version__

        state = dict(state)
        pickled = state.pop(_VERSION_KEY, _UNKNOWN)
        if pickled != __version__:
            warnings.warn(
                InconsistentVersionWarning(
                    estimator_name=type(self).__name__,
                    original_version=pickled,
                    current_version=__version__,
                ),
                stacklevel=2,
            )
        super().__setstate__(state)
