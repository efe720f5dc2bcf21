"""Input checks the single-precision kernels need beyond ``validate_data``.

scikit-learn's ``validate_data`` accepts any finite float64 value and any
valid SciPy matrix. The estimators compute in float32 and their compiled
kernels read a CSR matrix's arrays directly, so two more cases must be
caught or repaired before the kernels see them:

- a finite float64 value beyond float32's range (``1e39``) becomes ``inf``,
  and the model ``nan``, without an error;
- a CSR/CSC matrix that repeats an entry (SciPy reads ``X[i, j]`` as the sum
  of the repeats; a kernel that takes, say, the largest stored value of a row
  would read another matrix), or whose index arrays are not in the machine's
  byte order (Numba refuses them).
"""

import numpy as np

__all__ = ["check_kernel_input", "check_float32_range", "check_training_finite"]

_F32_MAX = float(np.finfo(np.float32).max)


def check_kernel_input(X, name="X", *, sum_repeats=True, float32=True):
    """Return ``X`` (validated by ``validate_data``) ready for the kernels.

    With ``sum_repeats``, a CSR/CSC matrix that is not in canonical form
    (repeated entries, or unsorted indices) is replaced by a copy with the
    repeats summed (SciPy's reading of it) and the indices sorted; index
    arrays not in the machine's byte order are converted (in the same
    copy). ``X`` itself is never modified, and a canonical, native ``X`` is
    returned as it is. CuPy arrays and ``cupyx`` sparse matrices are checked
    alike, on the device.

    Parameters
    ----------
    X : ndarray, SciPy sparse matrix, cupy.ndarray or cupyx sparse matrix
        Float32 or float64 values, already checked to be finite.
    name : str, default="X"
        The name used in error messages.
    sum_repeats : bool, default=True
        Canonicalise sparse matrices. A model whose first operation is a
        product with ``X`` reads repeated entries as summed already and
        passes False (no copy of an unsorted ``X``).
    float32 : bool, default=True
        Refuse float64 values beyond float32's range: for models that compute
        in single precision (not a user's ``estimator=``).

    Returns
    -------
    X : ndarray or sparse matrix (the input's library)

    Raises
    ------
    ValueError
        With ``float32``, a value larger in magnitude than float32's largest
        (about 3.4e38).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_matrix((np.array([1.0, 2.0]), np.array([0, 0]), np.array([0, 2])),
    ...                   shape=(1, 2))
    >>> check_kernel_input(X).toarray()
    array([[3., 0.]])
    >>> check_kernel_input(np.array([[1e39]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: X holds values up to 1e+39 in magnitude, beyond float32's range ...
    """
    sparse = getattr(X, "format", None) in ("csr", "csc")  # SciPy or cupyx
    if sparse:
        native = X.indices.dtype.isnative and X.indptr.dtype.isnative
        if not native or (sum_repeats and not X.has_canonical_format):
            X = X.copy()
            if not native:
                X.indices = X.indices.astype(X.indices.dtype.newbyteorder("="))
                X.indptr = X.indptr.astype(X.indptr.dtype.newbyteorder("="))
            if sum_repeats:
                X.sum_duplicates()  # sorts too; nothing to do when canonical
    values = X.data if sparse else X
    if float32 and values.dtype == np.float64 and values.size:
        check_float32_range(values, name)
    return X


def check_float32_range(values, name="X"):
    """Raise a ``ValueError`` when float64 ``values`` (NumPy or CuPy, not
    empty) hold a magnitude beyond float32's largest."""
    top = max(float(values.max()), -float(values.min()))  # no |X| copy of a large X
    if top > _F32_MAX:
        raise ValueError(
            f"{name} holds values up to {top:.3g} in magnitude, beyond float32's range "
            f"(about {_F32_MAX:.2g}): the estimator computes in single precision. Scale "
            "the features, e.g. with sklearn.preprocessing.MaxAbsScaler."
        )


def check_training_finite(loss):
    """Raise a ``ValueError`` when a fit's ``loss`` values are not all finite.

    The weights overflowed: scikit-learn's ``MLPClassifier`` raises in the
    same case rather than return a model that predicts ``nan``.

    Examples
    --------
    >>> check_training_finite([0.5, 0.25])
    >>> check_training_finite([0.5, float("nan")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: Training produced a non-finite loss ...
    """
    if not np.all(np.isfinite(loss)):
        raise ValueError(
            "Training produced a non-finite loss (the weights overflowed). The input data "
            "may contain large values and need to be scaled (e.g. with "
            "sklearn.preprocessing.StandardScaler or MaxAbsScaler), or learning_rate may be "
            "too large."
        )
