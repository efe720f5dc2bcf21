"""Misuse of the estimators and of ``load_xc``: a clear error, or a documented behaviour.

One table, one row per misuse and estimator: ``(estimator, misuse, action,
expected)`` where ``expected`` is ``(exception type, message regex)`` or
``OK`` for a documented behaviour whose outcome is checked by the action
itself. ``docs/user_guide/guarantees.rst`` lists the same rows; keep both in
step.

Already covered elsewhere, and not repeated here:

- ``skmach/datasets/tests/test_xc.py::test_malformed_input_names_file_and_line``:
  27 malformed XC files (each error names file and line); the XC rows below
  are the issue's classes of damage only.
- ``skmach/_hashing/tests/test_universal.py::test_class_indices_near_the_limit``:
  class *indices* near ``2**32`` hash uniformly, beyond it is a ValueError.
  The label rows below check that raw label *ids* near the integer limits
  never reach the hash (labels are encoded as positions in ``classes_``).
- ``skmach/mach/tests/test_mach.py::test_sample_weight_validation`` and
  ``::test_n_buckets_at_least_n_classes_uses_bijections`` (training quality of
  the bijection mode).
"""

import gzip

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skmach import LSHSparseMLPClassifier, MACHClassifier
from skmach._hashing import PermutationFamily
from skmach.datasets import load_xc

OK = "documented behaviour"

# --------------------------------------------------------------------- data
_rng = np.random.default_rng(0)
N, D, K, L = 60, 6, 6, 8
X = _rng.standard_normal((N, D))
y = np.arange(N) % K
Y = (_rng.random((N, L)) < 0.3).astype(np.int64)
Y[:, 0] = 1  # every column has positives; rows emptied where a row needs it


def _mach(**kw):
    # B**R = 64 >= K: distinct bucket vectors, no "share their bucket" warning
    return MACHClassifier(**{**dict(n_buckets=4, n_repetitions=3, n_epochs=1,
                                    random_state=0), **kw})


def _lsh(**kw):
    return LSHSparseMLPClassifier(**{**dict(hidden_layer_sizes=(8,), n_tables=2, n_bits=2,
                                            n_epochs=1, random_state=0), **kw})


MAKE = {"mach": _mach, "lsh": _lsh}
_FITTED = {}


def fitted(name):
    if name not in _FITTED:
        _FITTED[name] = MAKE[name]().fit(X, y)
    return _FITTED[name]


def _with(value, where=(0, 0), A=X):
    A = A.copy()
    A[where] = value
    return A


def _strings():
    S = X.astype(str).astype(object)
    S[0, 0] = "abc"
    return S


def _partial_twice(name, y2, classes2=None, X2=X):
    est = MAKE[name]().partial_fit(X, y, classes=np.arange(K))
    return est.partial_fit(X2, y2, classes=classes2)


# ---------------------------------------------------- documented behaviours
def _bijection_when_buckets_cover_classes(name):
    est = _mach(n_buckets=K).fit(X, y)
    assert est.n_buckets_ == K and isinstance(est.hash_family_, PermutationFamily)
    est = _mach(n_buckets=10 * K).fit(X, y)
    assert est.n_buckets_ == K and isinstance(est.hash_family_, PermutationFamily)
    for r in range(est.n_repetitions):
        assert sorted(est.hash_family_.buckets()[r].tolist()) == list(range(K))


def _empty_label_rows(name, loss=None, sparse_y=False):
    """Rows without labels are accepted; softmax losses give them zero weight.

    Zero weight is checked by moving the features of the empty rows: the
    model must not change (``alpha=0``: no penalty term that could depend on
    n). The sigmoid loss treats them as all-negative, so it does change.
    """
    empty = np.arange(0, N, 3)
    Ye = Y.copy()
    Ye[empty] = 0
    Ye = sp.csr_matrix(Ye) if sparse_y else Ye
    X_moved = X.copy()
    X_moved[empty] = 5 * _rng.standard_normal((len(empty), D))
    kw = dict(alpha=0.0, n_epochs=2)
    if loss is not None:
        kw["loss"] = loss
    a = MAKE[name](**kw).fit(X, Ye)
    b = MAKE[name](**kw).fit(X_moved, Ye)
    pred = a.predict(X[:5])
    assert pred.shape == (5, L)
    if name == "mach":
        pa, pb = a.predict_bucket_proba(X), b.predict_bucket_proba(X)
    else:
        pa, pb = a.predict_proba(X), b.predict_proba(X)
    if loss == "sigmoid":
        assert not np.allclose(pa, pb)  # empty rows are negatives for every label
    else:
        np.testing.assert_array_equal(pa, pb)


def _extreme_label_ids(name, dtype):
    info = np.iinfo(dtype)
    low = [info.min, info.min + 1, 0] if info.min < 0 else [0, 1, 2]
    ids = np.array(low + [info.max - 2, info.max - 1, info.max], dtype=dtype)
    labels = ids[y]
    est = MAKE[name]().fit(X, labels)
    assert est.classes_.dtype == dtype
    np.testing.assert_array_equal(np.sort(est.classes_), np.sort(ids))
    pred = est.predict(X)
    assert pred.dtype == dtype and np.isin(pred, ids).all()
    top, _ = est.predict_topk(X, K)
    assert top.dtype == dtype
    assert all(sorted(row.tolist()) == sorted(ids.tolist()) for row in top)


def _partial_fit_without_classes(name):
    # LSH: classes default to those of the first y (docstring); MACH must hash
    # every class up front and raises (see the table).
    est = _lsh().partial_fit(X, y)
    np.testing.assert_array_equal(est.classes_, np.arange(K))


def _repeated_entries(A):
    """``A`` as CSR with every entry stored twice, each half the value:
    SciPy's reading of it is ``A``."""
    C = sp.csr_matrix(A)
    return sp.csr_matrix((np.repeat(C.data / 2, 2), np.repeat(C.indices, 2), C.indptr * 2),
                         shape=C.shape)


def _big_endian(A):
    C = sp.csr_matrix(A)
    C.indices, C.indptr = C.indices.astype(">i4"), C.indptr.astype(">i4")
    return C


def _repeated_entries_read_as_summed(name):
    # the LSH hidden layer's DWTA hash takes a row's largest stored value: a
    # repeated entry stored as two halves read as another matrix
    kw = dict(lsh_layers="hidden", hidden_layer_sizes=(32,), active_budget=0.25,
              n_tables=4, n_bits=3) if name == "lsh" else {}
    Xs, Xr = sp.csr_matrix(X), _repeated_entries(X)
    a = MAKE[name](**kw).fit(Xs, y)
    b = MAKE[name](**kw).fit(Xr, y)
    assert Xr.nnz == 2 * Xs.nnz  # the caller's matrix is left as it was
    # the network sums the repeats first (the same model); MACH's first layer,
    # a product with X, sums them in its own order (the same to rounding)
    same = (np.testing.assert_array_equal if name == "lsh" else
            lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7))
    same(a.predict_proba(Xs), b.predict_proba(Xs))
    same(a.predict_proba(Xs), a.predict_proba(_repeated_entries(X)))


def _big_endian_indices(name):
    a = MAKE[name]().fit(_big_endian(X), y)
    b = MAKE[name]().fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(a.predict_proba(_big_endian(X)), b.predict_proba(X))


def _set_params_then_partial_fit(name, **params):
    est = MAKE[name]().partial_fit(X, y, classes=np.arange(K))
    return est.set_params(**params).partial_fit(X, y)


def _early_stopping_small(name):
    # 6 classes, a 12-sample validation part at most 2: not stratified (it
    # cannot hold every class) rather than train_test_split's error
    est = _lsh(early_stopping=True, n_epochs=3).fit(X[:12], y[:12])
    assert est.n_iter_ >= 1


def _never_positive_label_with_estimator(name):
    from sklearn.tree import DecisionTreeClassifier

    Y0 = Y.copy()
    Y0[:, -1] = 0  # the last label is never positive
    # a bucket per label (n_buckets >= n_labels): the label's buckets are never positive
    est = _mach(n_buckets=L, estimator=DecisionTreeClassifier(random_state=0)).fit(X, Y0)
    assert est.predict_proba(X)[:, -1].max() < 1e-6  # was 1.0: P(bucket negative)
    assert est.predict(X)[:, -1].sum() == 0


def _huge_float64_with_estimator(name):
    # a user's estimator= computes in its own precision: no float32 limit
    from sklearn.neighbors import KNeighborsClassifier

    Xb = _with(1e39)
    est = _mach(estimator=KNeighborsClassifier(3)).fit(Xb, y)
    assert est.predict(Xb).shape == (N,)


def _empty_retrieval_scored_in_full(name):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = _lsh(lsh_layers="output", output_scoring="lsh", active_budget=2, min_active=0.0,
                   n_bits=16).fit(X, y)
    assert any("min_active=0 pads none" in str(w.message) for w in caught)
    # a sample that retrieves no output is scored in full (all -inf before:
    # uniform probabilities, class 0 predicted); the others keep -inf for what
    # they do not retrieve
    proba = est.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    assert np.isfinite(est.decision_function(X)).any(axis=1).all()


# -------------------------------------------------------------------- table
def _rows():
    R = []

    def row(est, misuse, action, expected):
        R.append(pytest.param(est, action, expected, id=f"{est}-{misuse}"))

    for e in ("mach", "lsh"):
        Name = "MACHClassifier" if e == "mach" else "LSHSparseMLPClassifier"
        # -- non-finite X
        row(e, "nan-X-fit", lambda e=e: MAKE[e]().fit(_with(np.nan), y), (ValueError, "contains NaN"))
        row(e, "inf-X-fit", lambda e=e: MAKE[e]().fit(_with(np.inf), y),
            (ValueError, "contains infinity"))
        row(e, "neg-inf-X-fit-sparse",
            lambda e=e: MAKE[e]().fit(sp.csr_matrix(_with(-np.inf)), y),
            (ValueError, "contains infinity"))
        row(e, "nan-X-predict_topk", lambda e=e: fitted(e).predict_topk(_with(np.nan), 2),
            (ValueError, "contains NaN"))
        row(e, "inf-X-predict", lambda e=e: fitted(e).predict(_with(np.inf)),
            (ValueError, "contains infinity"))
        # -- feature count
        msg = rf"X has 4 features, but {Name} is expecting 6 features"
        row(e, "n-features-predict", lambda e=e: fitted(e).predict(X[:, :4]), (ValueError, msg))
        row(e, "n-features-predict_topk", lambda e=e: fitted(e).predict_topk(X[:, :4], 2),
            (ValueError, msg))
        row(e, "n-features-predict_proba", lambda e=e: fitted(e).predict_proba(X[:, :4]),
            (ValueError, msg))
        row(e, "n-features-partial_fit", lambda e=e: _partial_twice(e, y, X2=X[:, :4]),
            (ValueError, msg))
        # -- non-numeric / malformed X
        row(e, "non-numeric-X-fit", lambda e=e: MAKE[e]().fit(_strings(), y),
            (ValueError, "could not convert string to float"))
        row(e, "non-numeric-X-predict", lambda e=e: fitted(e).predict(_strings()),
            (ValueError, "could not convert string to float"))
        row(e, "complex-X", lambda e=e: MAKE[e]().fit(X + 1j, y),
            (ValueError, "Complex data not supported"))
        row(e, "1d-X", lambda e=e: MAKE[e]().fit(X[:, 0], y), (ValueError, "Expected 2D array"))
        row(e, "no-samples", lambda e=e: MAKE[e]().fit(X[:0], y[:0]), (ValueError, "0 sample"))
        # -- targets
        row(e, "y-None", lambda e=e: MAKE[e]().fit(X, None), (ValueError, "requires y"))
        row(e, "X-y-length", lambda e=e: MAKE[e]().fit(X, y[:10]),
            (ValueError, "inconsistent numbers of samples"))
        row(e, "nan-label", lambda e=e: MAKE[e]().fit(X, np.where(y == 0, np.nan, y)),
            (ValueError, "y contains NaN"))
        row(e, "continuous-y", lambda e=e: MAKE[e]().fit(X, X[:, 0]),
            (ValueError, "Unknown label type"))
        row(e, "non-binary-2d-y", lambda e=e: MAKE[e]().fit(X, 1.5 * Y),
            (ValueError, "binary indicator"))
        for what, Yb in (("minus-one-plus-one", 2 * Y - 1), ("one-two", Y + 1)):
            # a 2-D y with two values other than {0, 1} passes sklearn's
            # type_of_target as "multilabel-indicator": it must be refused,
            # not read as "every non-zero entry is a positive label"
            row(e, f"2d-y-{what}", lambda e=e, Yb=Yb: MAKE[e]().fit(X, Yb), (ValueError, "0/1"))
        row(e, "single-class", lambda e=e: MAKE[e]().fit(X, np.zeros(N)),
            (ValueError, r"at least 2 classes"))
        row(e, "single-class-strings", lambda e=e: MAKE[e]().fit(X, np.array(["a"] * N)),
            (ValueError, r"at least 2 classes"))
        row(e, "single-class-partial_fit",
            lambda e=e: MAKE[e]().partial_fit(X, np.zeros(N), classes=[0.0]),
            (ValueError, r"at least 2 classes"))
        for loss in (("softmax", "sigmoid") if e == "mach" else (None,)):
            tag = f"-{loss}" if loss else ""
            row(e, f"empty-label-rows-dense{tag}", lambda e=e, loss=loss: _empty_label_rows(e, loss), OK)
            row(e, f"empty-label-rows-sparse{tag}",
                lambda e=e, loss=loss: _empty_label_rows(e, loss, sparse_y=True), OK)
        for fmt, conv in (("dense", np.asarray), ("sparse", sp.csr_matrix)):
            row(e, f"no-positive-label-{fmt}",
                lambda e=e, conv=conv: MAKE[e]().fit(X, conv(np.zeros_like(Y))),
                (ValueError, "no positive label"))
        row(e, "label-ids-int64-limits", lambda e=e: _extreme_label_ids(e, np.int64), OK)
        row(e, "label-ids-uint64-limits", lambda e=e: _extreme_label_ids(e, np.uint64), OK)
        # -- partial_fit
        row(e, "unseen-label-partial_fit", lambda e=e: _partial_twice(e, y + 10),
            (ValueError, "y contains labels not in classes"))
        row(e, "unseen-label-first-partial_fit",
            lambda e=e: MAKE[e]().partial_fit(X, y + 10, classes=np.arange(K)),
            (ValueError, "y contains labels not in classes"))
        row(e, "other-classes-partial_fit",
            lambda e=e: _partial_twice(e, y, classes2=np.arange(K + 1)),
            (ValueError, "classes differ"))
        row(e, "label-kind-changes-partial_fit", lambda e=e: _partial_twice(e, Y),
            (ValueError, "multilabel|multi-label"))
        # -- predict_topk's k
        row(e, "k-above-n_classes", lambda e=e: fitted(e).predict_topk(X, K + 1),
            (ValueError, r"k must be .*\[1, n_classes=6\]"))
        row(e, "k-zero", lambda e=e: fitted(e).predict_topk(X, 0), (ValueError, "k must be"))
        row(e, "k-float", lambda e=e: fitted(e).predict_topk(X, 2.5),
            (TypeError, "k must be an integer"))
        row(e, "k-bool", lambda e=e: fitted(e).predict_topk(X, True),
            (TypeError, "k must be an integer"))
        # -- not fitted
        for method in ("predict", "predict_proba", "predict_topk"):
            row(e, f"not-fitted-{method}",
                lambda e=e, method=method: getattr(MAKE[e](), method)(
                    X, *([2] if method == "predict_topk" else [])),
                (NotFittedError, "not fitted yet"))
        # -- sample_weight
        if e == "mach":
            for what, w, msg in [
                ("wrong-length", np.ones(3), r"sample_weight.shape == \(3,\), expected \(60,\)"),
                ("negative", _with(-1.0, 0, np.ones(N)), "Negative values"),
                ("all-zero", np.zeros(N), "at least one non-zero"),
                ("nan", _with(np.nan, 0, np.ones(N)), "sample_weight contains NaN"),
            ]:
                row(e, f"sample_weight-{what}", lambda w=w: _mach().fit(X, y, sample_weight=w),
                    (ValueError, msg))
        else:
            # no sample_weight parameter at all (it is not silently ignored)
            row(e, "sample_weight-any", lambda: _lsh().fit(X, y, sample_weight=np.ones(N)),
                (TypeError, "unexpected keyword argument 'sample_weight'"))
        # -- values the single-precision kernels cannot hold; sparse layouts
        for where, act in (("fit", lambda A, e=e: MAKE[e]().fit(A, y)),
                           ("predict", lambda A, e=e: fitted(e).predict(A))):
            row(e, f"beyond-float32-X-{where}", lambda act=act: act(_with(1e39)),
                (ValueError, "beyond float32's range"))
        row(e, "repeated-sparse-entries", lambda e=e: _repeated_entries_read_as_summed(e), OK)
        row(e, "big-endian-sparse-indices", lambda e=e: _big_endian_indices(e), OK)
        if e == "lsh":  # weights that overflow: an error, not a model predicting nan
            row(e, "overflowing-training", lambda: _lsh().fit(X * 1e20, y),
                (ValueError, "non-finite loss"))
        else:  # MACH's first layer copes with such values (a finite model)
            row(e, "huge-X", lambda: np.testing.assert_array_equal(
                np.isfinite(_mach().fit(X * 1e30, y).predict_proba(X * 1e30)), True), OK)
        # -- parameters changed by set_params between partial_fit calls
        row(e, "set_params-batch_size-0-partial_fit",
            lambda e=e: _set_params_then_partial_fit(e, batch_size=0),
            (ValueError, "'batch_size' parameter"))
        row(e, "set_params-learning_rate-nan-partial_fit",
            lambda e=e: _set_params_then_partial_fit(e, learning_rate=float("nan")),
            (ValueError, "'learning_rate' parameter"))
        row(e, "n_jobs-0", lambda e=e: MAKE[e](n_jobs=0).fit(X, y), (ValueError, "'n_jobs'"))
        # -- classes and ragged targets
        row(e, "classes-scalar", lambda e=e: MAKE[e]().partial_fit(X, y, classes=K),
            (ValueError, "classes must be a non-empty 1-D"))
        row(e, "classes-2d", lambda e=e: MAKE[e]().partial_fit(X, y, classes=[[0, 1, 2], [3, 4, 5]]),
            (ValueError, "classes must be a non-empty 1-D"))
        row(e, "classes-nan", lambda e=e: MAKE[e]().partial_fit(
            X, y, classes=[0.0, 1, 2, 3, 4, 5, np.nan]), (ValueError, "classes contains NaN"))
        row(e, "classes-other-order-partial_fit",
            lambda e=e: _partial_twice(e, y, classes2=np.arange(K)[::-1]), OK)
        row(e, "classes-repeated-later-partial_fit",
            lambda e=e: _partial_twice(e, y, classes2=np.r_[0, np.arange(K)]),
            (ValueError, "classes differ"))
        row(e, "ragged-label-lists", lambda e=e: MAKE[e]().fit(
            X[:3], [[0, 1], [2], [0, 1, 3]]), (ValueError, "MultiLabelBinarizer"))
    # -- LSH: scoring a multi-label model; output layers that cannot learn
    lsh_ml = lambda: _lsh().fit(X, Y)  # noqa: E731
    R.append(pytest.param("lsh", lambda: lsh_ml().score(X, y),
                          (ValueError, "fitted on multi-label targets"),
                          id="lsh-multilabel-score-1d-y"))
    R.append(pytest.param("lsh", lambda: lsh_ml().score(X[:10], Y[:50]),
                          (ValueError, "inconsistent numbers of samples"),
                          id="lsh-multilabel-score-length"))
    R.append(pytest.param("lsh", lambda: lsh_ml().score(X, Y, sample_weight=np.ones(3)),
                          (ValueError, r"sample_weight.shape == \(3,\)"),
                          id="lsh-multilabel-score-sample_weight"))
    R.append(pytest.param("lsh", lambda: _lsh(lsh_layers="output").fit(X, y > 2),
                          (ValueError, "its softmax needs at least 2"),
                          id="lsh-output-layer-budget-1"))
    R.append(pytest.param("lsh", lambda: _empty_retrieval_scored_in_full("lsh"), OK,
                          id="lsh-output_scoring-lsh-nothing-retrieved"))
    R.append(pytest.param("lsh", lambda: _lsh(lsh_layers=("no", "no")).fit(X, y),
                          (TypeError, "one bool"), id="lsh-lsh_layers-strings"))
    R.append(pytest.param("lsh", lambda: np.testing.assert_array_equal(
        _lsh(lsh_layers=(1, 0), active_budget=0.5).fit(X, y).lsh_layers_, [True, False]), OK,
        id="lsh-lsh_layers-0-1"))
    R.append(pytest.param("lsh", lambda: _early_stopping_small("lsh"), OK,
                          id="lsh-early_stopping-fewer-samples-than-classes"))
    R.append(pytest.param("mach", lambda: _never_positive_label_with_estimator("mach"), OK,
                          id="mach-estimator-never-positive-label"))
    R.append(pytest.param("mach", lambda: _huge_float64_with_estimator("mach"), OK,
                          id="mach-estimator-float64-beyond-float32"))
    # -- MACH hyper-parameters (sklearn's InvalidParameterError is a ValueError)
    for v in (1, 0, -3, 2.5, "8"):
        R.append(pytest.param("mach", lambda v=v: _mach(n_buckets=v).fit(X, y),
                              (ValueError, "'n_buckets' parameter .* range \\[2, inf\\)"),
                              id=f"mach-n_buckets={v!r}"))
    R.append(pytest.param("mach", lambda: _bijection_when_buckets_cover_classes("mach"), OK,
                          id="mach-n_buckets>=n_classes"))
    for v in (0, -1, 10_001, 10**9, 2.0, None):
        R.append(pytest.param("mach", lambda v=v: _mach(n_repetitions=v).fit(X, y),
                              (ValueError, r"'n_repetitions' parameter .* range \[1, 10000\]"),
                              id=f"mach-n_repetitions={v!r}"))
    R.append(pytest.param("mach", lambda: _mach().partial_fit(X, y), (ValueError, "classes must be passed"),
                          id="mach-partial_fit-without-classes"))
    R.append(pytest.param("mach", lambda: _mach(max_proba_bytes=100).fit(X, y).predict_proba(X),
                          (ValueError, "would build a dense 60 x 6 matrix"),
                          id="mach-predict_proba-over-max_proba_bytes"))
    R.append(pytest.param("lsh", lambda: _partial_fit_without_classes("lsh"), OK,
                          id="lsh-partial_fit-without-classes"))
    # -- LSH hyper-parameters: its analogues of n_buckets / n_repetitions
    for name, v in [("n_tables", 0), ("n_tables", 10**9), ("active_budget", 0), ("active_budget", 1.5),
                    ("n_bits", 63), ("hidden_layer_sizes", (0,))]:
        R.append(pytest.param("lsh", lambda name=name, v=v: _lsh(**{name: v}).fit(X, y),
                              (ValueError, name), id=f"lsh-{name}={v!r}"))
    return R


@pytest.mark.parametrize("est, action, expected", _rows())
def test_misuse(est, action, expected):
    if expected == OK:
        action()
        return
    exc, match = expected
    with pytest.raises(exc, match=match):
        action()


# ------------------------------------------------------------ load_xc table
_TOY = "3 4 2\n0 1:1\n1 2:1.5 3:2\n0,1 0:1\n"


def _write(path, text):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _truncated_gzip(tmp_path):
    data = gzip.compress((_TOY + "0 1:1\n" * 2000).replace("3 4 2", "2003 4 2").encode())
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


XC_ROWS = [
    # (id, file contents or a factory, load_xc kwargs, (exception, regex))
    ("empty-file", "", {}, (ValueError, "line 1: file is empty")),
    ("blank-file", "\n\n", {}, (ValueError, "line 1: file is empty")),
    ("header-two-fields", "3 4\n0 1:1\n", {}, (ValueError, "line 1: bad header")),
    ("header-four-fields", "3 4 2 7\n", {}, (ValueError, "line 1: bad header")),
    ("header-not-numbers", "a b c\n", {}, (ValueError, "line 1: bad header")),
    ("header-negative", "2 4 -3\n", {}, (ValueError, "line 1: bad header")),
    ("truncated-lines", _TOY.rsplit("\n", 2)[0] + "\n", {},
     (ValueError, "line 4: unexpected end of file.*truncated")),
    ("truncated-mid-feature", _TOY[:-2], {}, (ValueError, "line 4: feature value '' is not a number")),
    ("truncated-gzip-stream", _truncated_gzip, {}, (ValueError, "could not be read")),
    ("feature-index-out-of-range", "1 4 2\n0 4:1\n", {},
     (ValueError, "line 2: feature index 4 is out of range for n_features=4")),
    ("huge-feature-index", "1 4 2\n0 99999999999999999999:1\n", {},
     (ValueError, "line 2: feature index .* out of range")),
    ("label-out-of-range", "1 4 2\n2 1:1\n", {},
     (ValueError, "line 2: label 2 is out of range for n_labels=2")),
    ("huge-label", "1 4 2\n99999999999999999999 1:1\n", {},
     (ValueError, "line 2: label .* out of range")),
    ("n_features-below-header", _TOY, {"n_features": 2},
     (ValueError, "n_features=2 is smaller than the 4 announced in the header")),
    ("not-utf8", b"1 4 2\n\xff\xfe 1:1\n", {}, (ValueError, "not UTF-8")),
]


@pytest.mark.parametrize("content, kwargs, expected", [r[1:] for r in XC_ROWS],
                         ids=[r[0] for r in XC_ROWS])
def test_load_xc_misuse(tmp_path, content, kwargs, expected):
    if callable(content):
        path = content(tmp_path)
    elif isinstance(content, bytes):
        path = tmp_path / "bad.txt"
        path.write_bytes(content)
    else:
        path = _write(tmp_path / "bad.txt", content)
    exc, match = expected
    with pytest.raises(exc, match=match) as info:
        load_xc(path, **kwargs)
    if exc is ValueError and "line" in match:
        assert str(path) in str(info.value)  # the message names the file


# --------------------------------------------------- all-zero rows, float32
@pytest.mark.parametrize("name", ["mach", "lsh"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_all_zero_rows_give_finite_valid_outputs(name, sparse):
    Xz = X.copy()
    Xz[::4] = 0.0
    Xz = sp.csr_matrix(Xz) if sparse else Xz
    est = MAKE[name](n_epochs=2).fit(Xz, y)
    Z = np.zeros((5, D))
    Z = sp.csr_matrix(Z) if sparse else Z
    P = est.predict_proba(Z)
    assert np.isfinite(P).all() and (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    labels, scores = est.predict_topk(Z, K)
    assert np.isfinite(scores).all()
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    # all-zero rows are all the same input: the same answer for each
    assert (labels == labels[0]).all() and (scores == scores[0]).all()
    assert np.isin(est.predict(Z), est.classes_).all()


@pytest.mark.parametrize("name", ["mach", "lsh"])
def test_float32_input_gives_the_float64_answer(name):
    X32 = X.astype(np.float32)
    a = MAKE[name](n_epochs=2).fit(X, y)
    b = MAKE[name](n_epochs=2).fit(X32, y)
    la, sa = a.predict_topk(X, 3)
    lb, sb = b.predict_topk(X32, 3)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)
    lc, sc = a.predict_topk(X32, 3)  # a float64-fitted model on float32 input
    np.testing.assert_array_equal(la, lc)
    np.testing.assert_allclose(sa, sc, rtol=1e-5, atol=1e-6)
    for est, A in ((a, X), (b, X32)):
        P = est.predict_proba(A)
        assert np.isfinite(P).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["mach", "lsh"])
def test_a_prediction_does_not_depend_on_the_rest_of_the_batch(name):
    est = fitted(name)
    labels, scores = est.predict_topk(X, 3)
    for i in (0, 7, N - 1):
        li, si = est.predict_topk(X[i:i + 1], 3)
        np.testing.assert_array_equal(li[0], labels[i])
        np.testing.assert_allclose(si[0], scores[i], rtol=1e-6)
    np.testing.assert_array_equal(est.predict(X[::-1]), est.predict(X)[::-1])
