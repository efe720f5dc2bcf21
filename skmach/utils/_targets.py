"""Target encoding shared by the estimators.

Multi-class targets are 1-D arrays of labels of any type (strings too); they
are encoded as integer indices into ``classes_``. Multi-label targets are 2-D
indicator matrices (dense or SciPy sparse); they are kept as CSR and
``classes_`` is ``arange(n_labels)``.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import type_of_target


def encode_targets(y, classes=None, require_positive=True):
    """Encode ``y`` for training.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_labels)
        Labels, or a binary indicator matrix (dense or sparse) for multi-label.
    classes : array-like, optional
        All classes the model must know (``partial_fit``). For multi-label,
        it must be ``arange(n_labels)`` or omitted.
    require_positive : bool, default=True
        Refuse a multi-label ``y`` without any positive label (training on
        it learns nothing); scoring passes False.

    Returns
    -------
    kind : {"multiclass", "multilabel"}
    classes : ndarray
    encoded : ndarray of int64 (multi-class) or CSR matrix of float32
        (multi-label, entries 1.0 for each positive label).
    """
    if sp.issparse(y) or (hasattr(y, "ndim") and y.ndim == 2 and y.shape[1] > 1) or (
        isinstance(y, list) and len(y) and np.ndim(y[0]) == 1 and len(y[0]) > 1
    ):
        if not sp.issparse(y):
            y = _as_array(y)
        target_type = type_of_target(y)
        if target_type != "multilabel-indicator":
            raise ValueError(
                "A 2-D y must be a binary indicator matrix of 0/1 values for "
                f"multi-label classification; got target type {target_type!r}."
            )
        Y = sp.csr_matrix(y)
        Y.eliminate_zeros()
        if Y.nnz and not np.all(Y.data == 1):
            bad = np.unique(Y.data[Y.data != 1])[:5]
            raise ValueError(
                "A 2-D y must be a binary indicator matrix of 0/1 values for "
                f"multi-label classification; it also holds {bad.tolist()}."
            )
        if Y.nnz == 0 and require_positive:
            raise ValueError(
                "The multi-label y has no positive label at all (every row is all "
                "zeros): there is nothing to learn."
            )
        Y = Y.astype(np.float32)
        Y.sort_indices()
        Y.data[:] = 1.0
        n_labels = Y.shape[1]
        if classes is not None:
            classes = np.asarray(classes)
            if classes.shape != (n_labels,) or not np.array_equal(classes, np.arange(n_labels)):
                raise ValueError(
                    "For multi-label y, classes must be arange(n_labels) with "
                    f"n_labels={n_labels}; got {classes[:5]!r}..."
                )
        return "multilabel", np.arange(n_labels), Y
    y = _as_array(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D labels or a 2-D indicator matrix; got shape {y.shape}")
    target_type = type_of_target(y, input_name="y")
    if target_type not in ("binary", "multiclass"):
        raise ValueError(
            f"Unknown label type: {target_type!r}. A classifier needs discrete class labels "
            "(1-D) or a binary indicator matrix (2-D) for multi-label."
        )
    if classes is None:
        classes, encoded = np.unique(y, return_inverse=True)
    else:
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) == 0:
            raise ValueError(
                f"classes must be a non-empty 1-D array-like of labels; got shape {classes.shape}"
            )
        if classes.dtype.kind in "fc" and np.isnan(classes).any():
            raise ValueError("classes contains NaN")
        if len(np.unique(classes)) != len(classes):
            raise ValueError("classes contains duplicates")
        order = np.argsort(classes, kind="stable")
        sorted_classes = classes[order]
        pos = np.searchsorted(sorted_classes, y)
        pos = np.clip(pos, 0, len(classes) - 1)
        unseen = sorted_classes[pos] != y
        if np.any(unseen):
            raise ValueError(
                f"y contains labels not in classes: {np.unique(y[unseen])[:10]!r}"
            )
        # sorted, as scikit-learn's classifiers store classes_
        classes, encoded = sorted_classes, pos
    return "multiclass", classes, encoded.astype(np.int64, copy=False)


def check_same_classes(classes, classes_):
    """Refuse ``classes`` at a later ``partial_fit`` unless they are the
    fitted ``classes_`` (in any order, without repeats)."""
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) != len(classes_) or not np.array_equal(
            np.sort(classes), np.sort(classes_)):
        raise ValueError(
            "classes differ from those of the first call to partial_fit: "
            f"{classes.ravel()[:5]!r}... vs {np.asarray(classes_)[:5]!r}..."
        )


def _as_array(y):
    """``np.asarray(y)``, refusing a ragged list of label lists by name."""
    try:
        return np.asarray(y)
    except ValueError as exc:  # NumPy: "inhomogeneous shape"
        raise ValueError(
            "y is a ragged sequence (lists of labels of different lengths?): for "
            "multi-label targets pass a binary indicator matrix, e.g. "
            "sklearn.preprocessing.MultiLabelBinarizer().fit_transform(y)."
        ) from exc


def indicator_from_indices(indices, n_classes):
    """CSR indicator (n_samples, n_classes) with one 1 per row at ``indices``."""
    n = len(indices)
    return sp.csr_matrix(
        (np.ones(n, dtype=np.float32), np.asarray(indices, dtype=np.int64), np.arange(n + 1)),
        shape=(n, n_classes),
    )
