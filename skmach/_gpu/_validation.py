"""Validation of prediction input that may live on a device.

scikit-learn accepts arrays of other libraries (CuPy, ``array_api_strict``,
...) under ``sklearn.set_config(array_api_dispatch=True)``. Its
``validate_data`` cannot validate a ``cupyx.scipy.sparse`` matrix, and would
validate a CuPy array through the array API; the estimators here want the
array *on the GPU* for ``device="cuda"``, and NumPy / SciPy otherwise.
:func:`check_prediction_input` does both:

- NumPy, SciPy, lists, DataFrames: ``validate_data(..., reset=False)``
  unchanged;
- CuPy arrays and ``cupyx`` sparse matrices with ``device="cuda"``: checked
  on the device (2-D, at least one sample, the fitted number of features,
  a real dtype -- integers and bools become float32 -- and finite values,
  one device reduction) and returned there (``cupyx`` sparse as CSR or CSC);
- any of them with ``device="cpu"``, and arrays of other array API libraries
  on either device: copied to the host, then validated as NumPy.

Device input without ``array_api_dispatch=True`` is refused with a
``TypeError`` naming the setting, as scikit-learn refuses it.
"""

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils.validation import validate_data

from ..utils._input import check_kernel_input
from ._backend import is_cupy_array, is_cupy_sparse, to_host

__all__ = ["is_device_input", "check_prediction_input"]


def is_device_input(X):
    """True for CuPy arrays, ``cupyx`` sparse matrices and arrays of other
    array API libraries (anything but NumPy, SciPy and host containers).

    Examples
    --------
    >>> import numpy as np
    >>> is_device_input(np.ones((2, 2))), is_device_input([[1.0]])
    (False, False)
    """
    if is_cupy_array(X) or is_cupy_sparse(X):
        return True
    if isinstance(X, np.ndarray) or sp.issparse(X):
        return False
    return hasattr(X, "__array_namespace__")


def _to_numpy(X):
    if is_cupy_array(X) or is_cupy_sparse(X):
        return to_host(X)
    from sklearn.externals.array_api_compat import array_namespace
    from sklearn.utils._array_api import _convert_to_numpy

    return _convert_to_numpy(X, array_namespace(X))


def check_prediction_input(estimator, X, device, *, accept_sparse=("csr", "csc"),
                           dtype=(np.float64, np.float32), **kernel_checks):
    """Validate ``X`` for a fitted estimator's prediction on ``device``.

    Parameters
    ----------
    estimator : fitted estimator
        With ``n_features_in_`` (and ``feature_names_in_`` when fitted on a
        DataFrame).
    X : array-like, sparse matrix, cupy.ndarray, cupyx sparse matrix or array API array
        ``(n_samples, n_features)``.
    device : {"cpu", "cuda"}
        The estimator's resolved ``device_``.
    accept_sparse : tuple of str, default=("csr", "csc")
    dtype : tuple of dtypes, default=(np.float64, np.float32)
        Host input: as ``validate_data``. Device input: float32 and float64
        are kept, integers and bools become float32.
    **kernel_checks
        ``sum_repeats`` and ``float32`` of
        :func:`skmach.utils._input.check_kernel_input`, applied to every
        input (host or device).

    Returns
    -------
    X : ndarray, SciPy sparse matrix, cupy.ndarray or cupyx sparse matrix
        On the GPU only for CuPy / ``cupyx`` input with ``device="cuda"``.

    Raises
    ------
    TypeError
        Device input without ``array_api_dispatch=True``; complex or
        non-numeric device input.
    ValueError
        Not 2-D, no samples, a number of features other than the fitted
        one, NaN or infinity; ``device`` not ``"cpu"`` or ``"cuda"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> est = DummyClassifier().fit(np.zeros((2, 3)), [0, 1])
    >>> check_prediction_input(est, [[1, 2, 3]], "cpu").dtype
    dtype('float64')
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    if not is_device_input(X):
        return check_kernel_input(validate_data(estimator, X, accept_sparse=list(accept_sparse),
                                                dtype=list(dtype), reset=False),
                                  **kernel_checks)
    if not get_config()["array_api_dispatch"]:
        raise TypeError(
            f"{type(X).__module__}.{type(X).__name__} input needs "
            "sklearn.set_config(array_api_dispatch=True) (as scikit-learn's own array API "
            "support); or pass NumPy / SciPy input")
    on_gpu = is_cupy_array(X) or is_cupy_sparse(X)
    if device == "cpu" or not on_gpu:
        return check_kernel_input(validate_data(estimator, _to_numpy(X),
                                                accept_sparse=list(accept_sparse),
                                                dtype=list(dtype), reset=False),
                                  **kernel_checks)
    return _check_on_device(estimator, X, accept_sparse, kernel_checks)


def _check_on_device(estimator, X, accept_sparse, kernel_checks):
    import cupy

    sparse = is_cupy_sparse(X)
    if sparse:
        fmt = getattr(X, "format", None)
        if fmt not in accept_sparse:
            X = X.tocsr()
        values = X.data
    else:
        values = X
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got an array of shape {X.shape} instead; "
                         "reshape it with X.reshape(-1, 1) for a single feature or "
                         "X.reshape(1, -1) for a single sample.")
    kind = np.dtype(values.dtype).kind
    if kind not in "biuf":
        raise TypeError(f"X must hold real numbers; got dtype {values.dtype}")
    if kind != "f":
        X = X.astype(cupy.float32)
        values = X.data if sparse else X
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of "
                         f"1 is required by {type(estimator).__name__}.")
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {n_in} features as input.")
    if getattr(estimator, "feature_names_in_", None) is not None:
        import warnings

        warnings.warn(f"X does not have valid feature names, but {type(estimator).__name__} "
                      "was fitted with feature names", UserWarning, stacklevel=3)
    if values.size and not bool(cupy.isfinite(values).all()):
        raise ValueError("Input X contains NaN or infinity.")
    return check_kernel_input(X, **kernel_checks)  # as on the host, on the device
