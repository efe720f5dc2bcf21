"""Synthetic extreme classification problems with long-tailed labels."""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize
from sklearn.utils import check_random_state

__all__ = ["make_extreme_classification", "load_demo"]


def _check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_real(value, name, low, high=np.inf):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (low <= value <= high) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value}")
    return float(value)


def make_extreme_classification(
    n_samples=1000,
    n_features=1000,
    n_classes=100,
    *,
    multilabel=False,
    n_labels_per_sample=3,
    power=1.1,
    n_informative_per_class=10,
    nnz_per_sample=20,
    noise=0.1,
    return_sparse=True,
    random_state=None,
):
    """Generate a sparse extreme classification problem with long-tailed labels.

    Class ``c`` has a sparse prototype: ``n_informative_per_class`` feature
    indices drawn at random. Class frequencies follow a Zipf-like law: the
    class of frequency rank ``r`` (1-based) has probability proportional to
    ``r ** -power``; ranks are assigned to class ids by a random permutation.
    Each sample draws ``nnz_per_sample`` features: with probability ``noise``
    a feature uniformly at random, otherwise a random prototype feature of one
    of its labels. Values are uniform in [0.5, 1.5), repeated features are
    summed and rows are L2-normalised, so a linear model learns the problem
    well above chance.

    Time and memory are ``O(n_samples * nnz_per_sample + n_classes *
    n_informative_per_class)``: a million classes are fine.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    n_features : int, default=1000
        Number of features.
    n_classes : int, default=100
        Number of classes (labels). Millions are fine.
    multilabel : bool, default=False
        If True each sample has ``1 + Poisson(n_labels_per_sample - 1)``
        distinct labels (at most ``n_classes``; labels drawn twice are merged)
        and ``y`` is an indicator matrix.
    n_labels_per_sample : float, default=3
        Mean number of labels per sample when ``multilabel=True`` (>= 1).
    power : float, default=1.1
        Exponent of the label frequency law (0 gives balanced classes; larger
        values give a longer tail).
    n_informative_per_class : int, default=10
        Size of each class prototype, at most ``n_features``.
    nnz_per_sample : int, default=20
        Number of feature draws per sample (non-zeros before merging repeats).
    noise : float, default=0.1
        Fraction of feature draws that are uniform noise, in [0, 1].
    return_sparse : bool, default=True
        Return ``X`` (and a multi-label ``y``) as CSR matrices; dense arrays
        otherwise.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output.

    Returns
    -------
    X : sparse matrix of shape (n_samples, n_features), CSR of float32
        Features with unit L2-norm rows.
    y : ndarray of shape (n_samples,) of int64, or CSR matrix of shape (n_samples, n_classes)
        Class ids (multi-class) or a float32 binary indicator (multi-label).

    Examples
    --------
    >>> from skmach.datasets import make_extreme_classification
    >>> X, y = make_extreme_classification(100, 50, 20, random_state=0)
    >>> X.shape, y.shape, X.dtype
    ((100, 50), (100,), dtype('float32'))
    >>> X, Y = make_extreme_classification(100, 50, 20, multilabel=True, random_state=0)
    >>> Y.shape
    (100, 20)
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_features = _check_int(n_features, "n_features", 1)
    n_classes = _check_int(n_classes, "n_classes", 1)
    n_labels_per_sample = _check_real(n_labels_per_sample, "n_labels_per_sample", 1)
    power = _check_real(power, "power", 0)
    n_inf = _check_int(n_informative_per_class, "n_informative_per_class", 1)
    if n_inf > n_features:
        raise ValueError(
            f"n_informative_per_class={n_inf} exceeds n_features={n_features}"
        )
    nnz = _check_int(nnz_per_sample, "nnz_per_sample", 1)
    noise = _check_real(noise, "noise", 0, 1)
    rng = check_random_state(random_state)

    # Long-tailed class distribution, ranks shuffled over the class ids.
    weights = np.arange(1, n_classes + 1, dtype=np.float64) ** -power
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    rank_to_class = rng.permutation(n_classes)

    def draw_classes(size):
        ranks = np.searchsorted(cdf, rng.random_sample(size), side="right")
        return rank_to_class[np.minimum(ranks, n_classes - 1)]

    idx_dtype = np.int32 if n_features <= np.iinfo(np.int32).max else np.int64
    prototypes = rng.randint(0, n_features, size=(n_classes, n_inf)).astype(idx_dtype)

    if multilabel:
        counts = 1 + rng.poisson(n_labels_per_sample - 1, size=n_samples)
        counts = np.minimum(counts, n_classes)
        rows = np.repeat(np.arange(n_samples), counts)
        Y = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, draw_classes(rows.size))),
            shape=(n_samples, n_classes),
        )
        Y.sum_duplicates()
        Y.data[:] = 1.0
        lab_ptr, lab_idx = Y.indptr, Y.indices
    else:
        y = draw_classes(n_samples).astype(np.int64)
        lab_ptr, lab_idx = np.arange(n_samples + 1), y

    # Feature draws: each picks one of its sample's labels, then a prototype
    # feature of that label, or (with probability noise) a random feature.
    rows = np.repeat(np.arange(n_samples), nnz)
    n_lab = np.diff(lab_ptr)[rows]
    which = lab_ptr[rows] + (rng.random_sample(rows.size) * n_lab).astype(np.int64)
    label = lab_idx[which]
    feat = prototypes[label, rng.randint(0, n_inf, size=rows.size)]
    is_noise = rng.random_sample(rows.size) < noise
    feat[is_noise] = rng.randint(0, n_features, size=int(is_noise.sum()))
    values = rng.uniform(0.5, 1.5, size=rows.size).astype(np.float32)
    X = sp.csr_matrix((values, (rows, feat)), shape=(n_samples, n_features))
    X.sum_duplicates()
    X = normalize(X, norm="l2", copy=False).astype(np.float32, copy=False)

    if multilabel:
        if not return_sparse:
            return X.toarray(), Y.toarray()
        return X, Y
    if not return_sparse:
        return X.toarray(), y
    return X, y


def load_demo(return_split=True):
    """Load the package's small built-in demo data set.

    A deterministic, long-tailed multi-class problem generated by
    :func:`make_extreme_classification` (6,000 samples, 2,000 sparse features,
    500 classes, ``power=1.1``, ``noise=0.6``, ``nnz_per_sample=15``,
    ``random_state=0``); no file is read. The first 4,500 samples are the
    training set and the last 1,500 the test set. A one-vs-rest logistic
    regression (default ``C``) reaches a precision at 1 of about 0.7 on the
    test set, while the most frequent class holds about 19% of the samples;
    83 of the 500 classes never occur in the training part (30 test samples
    have such a label).

    Parameters
    ----------
    return_split : bool, default=True
        Return ``X_train, X_test, y_train, y_test``; if False return the whole
        ``X, y``.

    Returns
    -------
    X_train, X_test : sparse matrices of shape (4500, 2000) and (1500, 2000), CSR of float32
    y_train, y_test : ndarrays of shape (4500,) and (1500,) of int64
        Class ids in ``range(500)``.

    Examples
    --------
    >>> from skmach.datasets import load_demo
    >>> X_train, X_test, y_train, y_test = load_demo()
    >>> X_train.shape, X_test.shape
    ((4500, 2000), (1500, 2000))
    """
    X, y = make_extreme_classification(
        n_samples=6000,
        n_features=2000,
        n_classes=500,
        power=1.1,
        n_informative_per_class=10,
        nnz_per_sample=15,
        noise=0.6,
        random_state=0,
    )
    if not return_split:
        return X, y
    n_train = 4500
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:]
