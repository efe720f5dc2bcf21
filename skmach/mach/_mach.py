"""MACHClassifier: Merged-Average Classifiers via Hashing (Medini et al., 2019)."""

import os
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils import get_tags
from sklearn import get_config
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from .._device import resolve_device
from .._kernels import numba_threads
from ..base import N_JOBS_CONSTRAINT, _VersionedStateMixin
from .._hashing import PermutationFamily, UniversalHashFamily
from ..utils._input import check_kernel_input, check_training_finite
from ..utils._progress import progress_bar
from ..utils._targets import check_same_classes, encode_targets
from ..utils._topk import check_k
from . import _repetition_model as rm
from ._sizes import auto_sizes, check_memory
from .._kernels._mach_scoring import default_candidate_buckets, stack_inverted
from ._scoring import class_scores, topk_classes, unbiased

_SEED_MAX = 2**31 - 1


class MACHClassifier(_VersionedStateMixin, ClassifierMixin, BaseEstimator):
    """Merged-Average Classifiers via Hashing, for very many classes.

    The ``K`` classes are hashed by ``R`` independent 2-universal hash
    functions into ``B`` buckets each. ``R`` small ``B``-way classifiers (the
    *repetitions*) learn to predict the bucket of the label; they never
    exchange information and are trained in parallel. A class's score is the
    average of the probabilities of its ``R`` buckets. Memory grows with
    ``R * B``, not with ``K``.

    Parameters
    ----------
    n_buckets : int or "auto", default="auto"
        Buckets per repetition (``B``). ``"auto"``: ``8 * sqrt(n_classes)``,
        at most ``n_classes / 2``, rounded to a power of two (1,024 for
        24,288 classes). When ``n_buckets >= n_classes``, each repetition
        maps the classes through a random bijection instead (no collisions;
        the model becomes an ensemble of ``R`` K-way classifiers).
    n_repetitions : int or "auto", default="auto"
        Independent hash functions and models (``R``). ``"auto"``: 16 up to
        10,000 classes, 4 above.
    hidden_layer_size : int or "auto", default="auto"
        Built-in model: 0 for a (sparse-input) linear model, else the number of
        ReLU units of its single hidden layer. ``"auto"``: the largest power
        of two up to 256 for which the first layers of all repetitions hold
        at most ``2**25`` weights, and at least 32 (128 for 65,536 features
        and 4 repetitions, 32 for ``2**18`` features).
    loss : {"auto", "softmax", "sigmoid"}, default="auto"
        Output of the built-in model. ``"softmax"``: one distribution over the
        buckets (multi-label: the target spreads over the sample's buckets).
        ``"sigmoid"``: one probability per bucket, made for multi-label
        targets (on multi-class ones each bucket is then learned one-vs-rest;
        accepted, and no better than softmax there).
        ``"auto"`` is softmax for multi-class targets and for multi-label
        targets with fewer than 4 labels per sample on average (bibtex, 2.4;
        debian-paths, 1.01), sigmoid above (delicious, 19): the better of the
        two on each (``benchmarks/results/xc_settings.md``).
    aggregation : {"auto", "mean", "logmean", "min"}, default="auto"
        How a class's bucket probabilities are combined over repetitions.
        ``"mean"`` is the paper's estimator; ``"auto"`` is ``"mean"`` for
        multi-class and ``"logmean"`` for multi-label. It is read at
        prediction time: changing it re-scores a fitted model.
    n_epochs : int or "auto", default="auto"
        Passes over the data (``fit``). ``"auto"``: 5 below 100,000 samples,
        2 from there on.
    batch_size : int, default=256
    learning_rate : float, default=0.02
        Adam step size.
    learning_rate_schedule : {"auto", "constant", "linear"}, default="auto"
        ``"linear"`` decays the step size from ``learning_rate`` towards 0
        over the minibatches of :meth:`fit`'s ``n_epochs`` (an early stop
        ends it sooner); :meth:`partial_fit` always uses ``learning_rate``.
        ``"auto"``: linear from 100,000 samples on, where it helped
        (debian-paths: validation P@1 0.980 against 0.974), constant below,
        where it did not (bibtex, delicious); the fitted
        ``learning_rate_schedule_`` shows the choice.
    alpha : float, default=1e-4
        L2 penalty; the objective is mean loss + ``alpha / 2 * ||W||^2 / n_samples``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop each repetition
        when its validation loss stops improving (keeping its best weights).
        Without it, a repetition stops when its training loss stops improving.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=3
    tol : float, default=1e-4
    estimator : classifier or None, default=None
        Any scikit-learn classifier with ``predict_proba``, trained per
        repetition instead of the built-in model (cloned ``R`` times, each with
        its own ``random_state`` when it has one).
    n_candidate_buckets : int, "auto" or None, default="auto"
        Sublinear inference: ``predict_topk`` first scores only the classes
        in each repetition's ``n_candidate_buckets`` most probable buckets
        (about ``R * n_candidate_buckets * n_classes / B`` classes per sample
        instead of ``n_classes``), then proves the top-k with a bound (a
        class outside every candidate bucket scores at most the aggregate of
        each repetition's next-best bucket); a sample whose top-k is not
        proven is scored exactly. The result is the exact top-k either way.
        ``"auto"``: 8 where that is faster than exact scoring (from 4,096
        classes, when ``8 * R / B <= 1/8``), else exact scoring; None: always
        exact scoring. Uses an inverted index of the hash functions, built
        on first use (``R * n_classes`` integers).
    max_proba_bytes : int, default=2**30
        ``predict_proba`` and ``decision_function`` refuse to build a dense
        ``n_samples x n_classes`` result larger than this; use
        :meth:`predict_topk`.
    n_jobs : int or None, default=None
        Repetitions trained in parallel (joblib semantics; ``-1`` uses all
        cores). Use ``joblib.parallel_config(backend="dask")`` to run them on
        a Dask cluster. The fitted model does not depend on ``n_jobs``.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where prediction runs. ``"cuda"``: bucket probabilities and the
        fused bucket scoring and top-k run on the GPU with CuPy
        (``skmach._gpu``); training still runs on the CPU kernels, and a
        clear ``ValueError`` is raised without CuPy or a GPU. ``"auto"``
        stays on the CPU until the GPU kernels have passed a device run
        (``benchmarks/gpu_check.sh``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (multi-label: ``arange(n_labels)``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has feature names that are all strings.
    n_buckets_ : int
        Buckets actually used (``"auto"`` resolved, at most ``n_classes``).
    n_repetitions_, hidden_layer_size_, n_epochs_ : int
        The other sizes, ``"auto"`` resolved (see ``skmach/mach/_sizes.py``).
    hash_family_ : UniversalHashFamily or PermutationFamily
        The R hash functions (stored as 2*R integers).
    coefs_ : list of ndarray
        Weights of the built-in model, repetitions side by side (absent when
        ``estimator`` is given).
    estimators_ : list of classifiers
        The fitted per-repetition classifiers (only with ``estimator``).
    loss_curve_ : ndarray of shape (n_epochs_run,)
        Mean training loss over repetitions at each epoch.
    n_iter_ : ndarray of shape (n_repetitions,)
        Epochs each repetition trained.
    device_ : str
        ``"cpu"`` or ``"cuda"``.

    References
    ----------
    T. Medini, Q. Huang, Y. Wang, V. Mohan, A. Shrivastava. "Extreme
    Classification in Log Memory using Count-Min Sketch: A Case Study of
    Amazon Search with 50M Products." NeurIPS 2019.

    Examples
    --------
    >>> from skmach.datasets import make_extreme_classification
    >>> from skmach import MACHClassifier
    >>> X, y = make_extreme_classification(n_samples=600, n_features=200,
    ...                                    n_classes=40, random_state=0)
    >>> clf = MACHClassifier(n_buckets=8, n_repetitions=6, random_state=0).fit(X, y)
    >>> labels, scores = clf.predict_topk(X[:2], k=3)
    >>> labels.shape, scores.shape
    ((2, 3), (2, 3))
    """

    _parameter_constraints: dict = {
        "n_buckets": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "n_repetitions": [Interval(Integral, 1, 10_000, closed="both"), StrOptions({"auto"})],
        "hidden_layer_size": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "loss": [StrOptions({"auto", "softmax", "sigmoid"})],
        "aggregation": [StrOptions({"auto", "mean", "logmean", "min"})],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_schedule": [StrOptions({"auto", "constant", "linear"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "n_candidate_buckets": [Interval(Integral, 1, None, closed="left"), None,
                                StrOptions({"auto"})],
        "max_proba_bytes": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": N_JOBS_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
    }

    def __init__(
        self,
        n_buckets="auto",
        n_repetitions="auto",
        *,
        hidden_layer_size="auto",
        loss="auto",
        aggregation="auto",
        n_epochs="auto",
        batch_size=256,
        learning_rate=0.02,
        learning_rate_schedule="auto",
        alpha=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=3,
        tol=1e-4,
        estimator=None,
        n_candidate_buckets="auto",
        max_proba_bytes=2**30,
        n_jobs=None,
        random_state=None,
        verbose=0,
        device="auto",
    ):
        self.n_buckets = n_buckets
        self.n_repetitions = n_repetitions
        self.hidden_layer_size = hidden_layer_size
        self.loss = loss
        self.aggregation = aggregation
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.estimator = estimator
        self.n_candidate_buckets = n_candidate_buckets
        self.max_proba_bytes = max_proba_bytes
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the R repetitions.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Dense or sparse (CSR/CSC) features, float32 or float64.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type, or a binary indicator matrix (dense or
            sparse) for multi-label classification.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, not all zero.

        Returns
        -------
        self : MACHClassifier
        """
        return self._fit(X, y, sample_weight, classes=None, partial=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over a chunk of data, continuing from the current model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default=None
            All the classes, required on the first call for multi-class
            targets (hashing needs them all up front). For multi-label
            targets the number of columns of ``y`` defines the classes.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MACHClassifier
        """
        first = not hasattr(self, "classes_")
        # every call: set_params may have changed a parameter since the last
        # (scikit-learn checks only the first call; a batch_size of 0 would
        # fail deep in the training loop)
        self._validate_params()
        if first:
            if classes is None and not (sp.issparse(y) or np.ndim(y) == 2):
                raise ValueError(
                    "classes must be passed on the first call to partial_fit "
                    "(all classes are hashed up front)."
                )
        elif classes is not None:
            check_same_classes(classes, self.classes_)
        return self._fit(X, y, sample_weight, classes=classes if first else self.classes_,
                         partial=not first, first_partial=first)

    def _fit(self, X, y, sample_weight, classes, partial, first_partial=False):
        # A fit that fails half-way must leave the estimator as it was (a
        # fitted model keeps working; an unfitted one stays unfitted).
        saved = dict(self.__dict__)
        try:
            return self._fit_impl(X, y, sample_weight, classes, partial, first_partial)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit_impl(self, X, y, sample_weight, classes, partial, first_partial):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        self.device_ = resolve_device(self.device, supported=("cpu", "cuda"),
                                      owner="MACHClassifier")
        self.__dict__.pop("_gpu_cache", None)
        X = check_kernel_input(validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            reset=not partial,
        ), **self._kernel_checks())
        if X.shape[0] == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        kind, classes_, yenc = encode_targets(y, classes)
        if yenc.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {X.shape[0]} and {yenc.shape[0]}"
            )
        if partial:
            if kind != self._kind:
                raise ValueError(f"y is {kind} but the model was fitted on {self._kind} targets")
            if kind == "multilabel" and yenc.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y has {yenc.shape[1]} label columns; the model has {len(self.classes_)}"
                )
        K = len(classes_)
        if K < 2:
            raise ValueError(
                f"MACHClassifier needs at least 2 classes; y has {K} class(es)."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32,
                                                 ensure_non_negative=True)
            if not np.any(sample_weight > 0):
                raise ValueError("sample_weight must not be all zero (no sample would count).")

        if not partial:
            self._kind = kind
            self.classes_ = classes_
            sizes = auto_sizes(self, K, X.shape[0], X.shape[1])
            self.n_buckets_ = sizes["n_buckets"]
            self.n_repetitions_ = sizes["n_repetitions"]
            self.hidden_layer_size_ = sizes["hidden_layer_size"]
            self.n_epochs_ = sizes["n_epochs"]
            # partial_fit keeps a constant rate (it does not know the total)
            self.learning_rate_schedule_ = ("constant" if first_partial
                                            else sizes["learning_rate_schedule"])
            if self.estimator is None:
                check_memory(self.n_features_in_, self.n_buckets_, self.n_repetitions_,
                             self.hidden_layer_size_, self.early_stopping)
            rng = check_random_state(self.random_state)
            hash_seed, self._shuffle_seed = rng.randint(0, _SEED_MAX, size=2)
            self._rep_seeds = rng.randint(0, _SEED_MAX, size=self.n_repetitions_)
            hrng = np.random.default_rng(hash_seed)
            if self.n_buckets_ >= K:
                self.hash_family_ = PermutationFamily(K, self.n_repetitions_, hrng)
            else:
                self.hash_family_ = UniversalHashFamily(K, self.n_buckets_, self.n_repetitions_,
                                                        hrng)
            # the loss shapes the trained weights, so it is fixed at fit time
            self._loss = self.loss if self.loss != "auto" else _auto_loss(kind, yenc)
            self._n_partial_calls = 0
            self._opt_state = None
            # a refit may switch between the built-in model and estimator=
            self.__dict__.pop("estimators_", None)
            self.__dict__.pop("_inv_cache", None)
            if self.estimator is None:
                self.coefs_ = None
            else:
                self.__dict__.pop("coefs_", None)

        if self.estimator is not None:
            if partial or first_partial:
                if not hasattr(self.estimator, "partial_fit"):
                    raise TypeError(
                        "partial_fit with estimator= needs an estimator with partial_fit; "
                        f"{type(self.estimator).__name__} has none."
                    )
            self._fit_estimators(X, yenc, sample_weight, incremental=partial or first_partial)
        else:
            self._fit_builtin(X, yenc, sample_weight, incremental=partial or first_partial)
        if first_partial or partial:
            self._n_partial_calls += 1
        return self

    def _groups(self):
        R = self.n_repetitions_
        n_groups = max(1, min(R, effective_n_jobs(self.n_jobs)))
        return [(int(g[0]), int(g[-1]) + 1) for g in np.array_split(np.arange(R), n_groups)]

    def _fit_builtin(self, X, y, sample_weight, incremental):
        # float64 input is read as it is (the kernels cast each value): no
        # float32 copy of a large X
        if sp.issparse(X):
            X = X.tocsr()
        n = X.shape[0]
        B, H = self.n_buckets_, self.hidden_layer_size_
        cfg = rm.TrainConfig(
            n_buckets=B, hidden_layer_size=H, loss=self._loss,
            n_epochs=1 if incremental else self.n_epochs_, batch_size=self.batch_size,
            learning_rate=self.learning_rate, alpha=self.alpha,
            learning_rate_schedule="constant" if incremental else self.learning_rate_schedule_,
            early_stopping=self.early_stopping and not incremental,
            n_iter_no_change=self.n_iter_no_change if not incremental else 10**9,
            tol=self.tol,
        )
        rng = np.random.default_rng([self._shuffle_seed, getattr(self, "_n_partial_calls", 0)])
        idx = np.arange(n)
        val_index = None
        if cfg.early_stopping:
            n_val = int(round(self.validation_fraction * n))
            if n_val < 1 or n - n_val < 1:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no validation "
                    f"or no training samples out of {n}."
                )
            perm = rng.permutation(n)
            val_index, idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        orders = [rng.permutation(idx) for _ in range(cfg.n_epochs)]
        groups = self._groups()
        old = self.coefs_
        # the Adam moments carry over from fit to partial_fit too
        state = getattr(self, "_opt_state", None) if incremental else None
        bar = progress_bar(cfg.n_epochs * self.n_repetitions_, self.verbose,
                           desc="MACH fit", unit="rep-epoch")
        jobs = []
        for r0, r1 in groups:
            p = None if old is None else rm.slice_params(old, r0, r1, B, H)
            st = None
            if state is not None:
                st = {"ms": rm.slice_params(state["ms"], r0, r1, B, H),
                      "vs": rm.slice_params(state["vs"], r0, r1, B, H), "t": state["t"]}
            jobs.append(delayed(_train_group_one_blas_thread)(
                os.getpid(), X, y, sample_weight, self.hash_family_.subset(r0, r1), p, st, cfg,
                self._rep_seeds[r0:r1], orders, val_index=val_index, n_total=n,
                progress=_BarUpdate(bar),
            ))
        # One BLAS thread per worker: joblib's threads are the parallelism.
        # (Process-based backends, Dask included, limit BLAS in the worker.)
        with threadpool_limits(limits=1, user_api="blas"):
            results = Parallel(n_jobs=self.n_jobs, prefer="threads")(jobs)
        bar.close()
        # consumes the groups' lists (lower peak memory: see concat_params)
        self.coefs_ = rm.concat_params([r["params"] for r in results], H)
        self._opt_state = {
            "ms": rm.concat_params([r["opt_state"]["ms"] for r in results], H),
            "vs": rm.concat_params([r["opt_state"]["vs"] for r in results], H),
            "t": results[0]["opt_state"]["t"],
        }
        curves = [r["loss_curves"] for r in results]
        for c in curves:
            check_training_finite(c)
        n_ep = max(c.shape[0] for c in curves)
        full = np.full((n_ep, self.n_repetitions_), np.nan)
        col = 0
        for c in curves:
            full[: c.shape[0], col:col + c.shape[1]] = c
            col += c.shape[1]
        curve = np.nanmean(full, axis=1)
        # partial_fit continues the history of a fit or of earlier partial_fits
        go_on = incremental and hasattr(self, "loss_curve_")
        self.loss_curve_ = np.concatenate([self.loss_curve_, curve]) if go_on else curve
        n_iter = np.concatenate([r["n_iter"] for r in results])
        self.n_iter_ = n_iter + self.n_iter_ if go_on else n_iter

    def _fit_estimators(self, X, y, sample_weight, incremental):
        R, B = self.n_repetitions_, self.n_buckets_
        if incremental and getattr(self, "estimators_", None) is not None and self._n_partial_calls:
            ests = self.estimators_
        else:
            ests = []
            for r in range(R):
                est = clone(self.estimator)
                if self._kind == "multilabel" and not get_tags(est).classifier_tags.multi_label:
                    est = OneVsRestClassifier(est)
                for name in est.get_params():
                    if name == "random_state" or name.endswith("__random_state"):
                        est.set_params(**{name: int(self._rep_seeds[r])})
                ests.append(est)
        self.estimators_ = Parallel(n_jobs=self.n_jobs, prefer="threads", verbose=self.verbose)(
            delayed(_fit_one_estimator)(est, X, y, sample_weight, self.hash_family_.subset(r, r + 1),
                                        B, incremental)
            for r, est in enumerate(ests)
        )
        self.n_iter_ = np.ones(R, dtype=int)

    # ---------------------------------------------------------- prediction
    def _check_X(self, X):
        check_is_fitted(self)
        from .._gpu._validation import check_prediction_input

        # CuPy input is checked on the device with device_="cuda" (under
        # sklearn.set_config(array_api_dispatch=True)); else as by validate_data
        return check_prediction_input(self, X, getattr(self, "device_", "cpu"),
                                      **self._kernel_checks())

    def _kernel_checks(self):
        """``check_kernel_input``'s options: the first layer is a product
        with X (repeated sparse entries are summed by it: no canonical copy),
        and only the built-in model computes in float32 (a user's
        ``estimator=`` may take float64 values of any size)."""
        return {"sum_repeats": False, "float32": self.estimator is None}

    def _chunk_rows(self, n):
        """Rows per chunk: one chunk's logits, bucket probabilities and the
        scorer's copy of them (float32) take at most a quarter of
        ``working_memory`` and 256 MiB (larger chunks buy no speed)."""
        budget = min(get_config()["working_memory"] * 2**20 // 4, 2**28)
        per_row = self.n_repetitions_ * self.n_buckets_ * 4 * 3
        return int(max(1, min(n, budget // per_row)))

    def predict_bucket_proba(self, X):
        """Bucket probabilities of every repetition, shape (n_samples, R, B).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        P : ndarray of shape (n_samples, n_repetitions, ``n_buckets_``), float32
        """
        X = self._check_X(X)
        return self._bucket_proba(X)

    def _bucket_proba(self, X, on_device=False):
        """Bucket probabilities; with ``device_="cuda"`` computed on the GPU
        (returned there when ``on_device``, else copied to the host)."""
        if self.device_ == "cuda" and self.estimator is None:
            from .._gpu import to_device, to_host
            from .._gpu._estimators import mach_bucket_proba

            Xf = X.tocsr() if sp.issparse(X) else X
            P = mach_bucket_proba(to_device(Xf, "cuda"), self._gpu_state()["params"],
                                  self.n_buckets_, self.hidden_layer_size_, self._loss)
            return P if on_device else to_host(P)
        with numba_threads(self.n_jobs):
            return self._bucket_proba_impl(X)

    def _gpu_state(self):
        """Weights and hash coefficients on the device, copied once (not saved)."""
        cache = getattr(self, "_gpu_cache", None)
        if cache is None:
            from .._gpu import hash_arguments
            from .._gpu._estimators import params_to_device

            cache = self._gpu_cache = {"params": params_to_device(self.coefs_),
                                       "hash": hash_arguments(self.hash_family_)}
        return cache

    def _bucket_proba_impl(self, X):
        if self.estimator is not None:
            return np.stack([_estimator_bucket_proba(e, X, self.n_buckets_, self._kind)
                             for e in self.estimators_], axis=1).astype(np.float32)
        Xf = X.astype(np.float32, copy=False)
        if sp.issparse(Xf):
            Xf = Xf.tocsr()
        return rm.predict_buckets(Xf, self.coefs_, self.n_buckets_, self.hidden_layer_size_,
                                  self._loss)

    def _iter_chunks(self, X):
        step = self._chunk_rows(X.shape[0])
        for s in range(0, X.shape[0], step):
            yield s, min(X.shape[0], s + step)

    @property
    def _aggregation(self):
        """``aggregation`` with "auto" resolved; read at prediction time, so
        ``set_params(aggregation=...)`` re-scores a fitted model."""
        if self.aggregation != "auto":
            return self.aggregation
        return "mean" if self._kind == "multiclass" else "logmean"

    def _no_collisions(self):
        return isinstance(self.hash_family_, PermutationFamily)

    def _finish_scores(self, S):
        """Turn aggregated bucket probabilities into the reported class scores."""
        if self._aggregation == "mean" and not self._no_collisions():
            unbiased(S, self.n_buckets_)
        return S

    def predict_topk(self, X, k=5):
        """The ``k`` best classes of each sample, best first.

        Classes are scored in blocks (``sklearn.set_config(working_memory=...)``
        bounds a block), so memory stays ``O(chunk x n_classes)`` at most and
        no ``n_samples x n_classes`` matrix is built.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        k : int, default=5
            ``1 <= k <= n_classes``.

        Returns
        -------
        labels : ndarray of shape (n_samples, k)
            Labels from ``classes_``.
        scores : ndarray of shape (n_samples, k), float32
            Their scores (the unbiased estimator for ``aggregation="mean"``).
        """
        X = self._check_X(X)
        K = len(self.classes_)
        k = check_k(k, K)
        labels = np.empty((X.shape[0], k), dtype=self.classes_.dtype)
        scores = np.empty((X.shape[0], k), dtype=np.float32)
        c = self._candidate_buckets()
        inv = self._stacked_inverted() if c is not None else None
        gpu = self.device_ == "cuda" and self.estimator is None
        for s, e in self._iter_chunks(X):
            P = self._bucket_proba(X[s:e], on_device=gpu)
            if gpu:  # fused scoring and top-k on the device (exact)
                from .._gpu._estimators import mach_topk

                idx, val = mach_topk(P, None, K, k, self._aggregation,
                                     hash_args=self._gpu_state()["hash"])
            else:
                idx, val = topk_classes(P, self.hash_family_, K, k, self._aggregation,
                                        n_candidate_buckets=c, inverted=inv,
                                        n_jobs=self.n_jobs)
            labels[s:e] = self.classes_[idx]
            scores[s:e] = self._finish_scores(val.astype(np.float32))
        return labels, scores

    def _candidate_buckets(self):
        """``n_candidate_buckets`` with "auto" resolved (None: exact scoring)."""
        c = self.n_candidate_buckets
        if c == "auto":
            return default_candidate_buckets(len(self.classes_), self.n_buckets_,
                                             self.n_repetitions_)
        return c

    def _stacked_inverted(self):
        inv = getattr(self, "_inv_cache", None)
        if inv is None:
            inv = self._inv_cache = stack_inverted(self._inverted_indices())
        return inv

    def _inverted_indices(self):
        return [self.hash_family_.inverted_index(r) for r in range(self.n_repetitions_)]

    def _dense_scores(self, X, method):
        X = self._check_X(X)
        K = len(self.classes_)
        need = X.shape[0] * K * 8
        if need > self.max_proba_bytes:
            raise ValueError(
                f"{method} would build a dense {X.shape[0]} x {K} matrix "
                f"({need / 2**30:.1f} GiB > max_proba_bytes={self.max_proba_bytes}); "
                "use predict_topk(X, k) instead, or score X in smaller chunks."
            )
        out = np.empty((X.shape[0], K), dtype=np.float64)
        classes = np.arange(K)
        for s, e in self._iter_chunks(X):
            P = self._bucket_proba(X[s:e])
            out[s:e] = class_scores(P, self.hash_family_, classes, self._aggregation,
                                    n_jobs=self.n_jobs)
        return out

    def decision_function(self, X):
        """Class scores.

        Multi-class: the unbiased estimator of each class's probability.
        Multi-label: the log-odds of each label's estimated probability, so
        that a label is predicted exactly where its score is positive.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,)
            for two classes (score of ``classes_[1]`` minus that of ``classes_[0]``).
        """
        check_is_fitted(self)
        if self._kind == "multilabel":
            S = self._finish_scores(self._dense_scores(X, "decision_function"))
            P = np.clip(S, 1e-12, 1 - 1e-7)
            return np.log(P) - np.log1p(-P)
        S = self._finish_scores(self._dense_scores(X, "decision_function"))
        if len(self.classes_) == 2:
            return S[:, 1] - S[:, 0]
        return S

    def predict_proba(self, X):
        """Class probabilities.

        Multi-class: the unbiased estimator clipped at 0 and renormalised, so
        each row sums to 1. Multi-label: each label's estimated probability.
        Classes whose estimate is clipped (to 0, or to 1 for multi-label)
        tie here; :meth:`predict_topk` ranks them by the unclipped estimate,
        so the two orders agree on every class above the clip.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        # the same estimator as predict_topk's scores (unbiased for "mean")
        S = self._finish_scores(self._dense_scores(X, "predict_proba"))
        if self._kind == "multilabel":
            return np.clip(S, 0.0, 1.0)
        np.maximum(S, 0, out=S)
        tot = S.sum(axis=1, keepdims=True)
        zero = tot[:, 0] <= 0
        S[zero] = 1.0
        tot[zero] = S.shape[1]
        S /= tot
        return S

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba` (``-inf`` where it is 0), as
        scikit-learn's classifiers give it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from skmach import MACHClassifier
        >>> X = np.random.default_rng(0).normal(size=(40, 3))
        >>> clf = MACHClassifier(n_buckets=2, n_repetitions=2, random_state=0).fit(X, X[:, 0] > 0)
        >>> bool(np.allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X)))
        True
        """
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    def predict(self, X):
        """Predicted labels.

        Multi-class: the best class. Multi-label: a dense indicator of the
        labels whose estimated probability is above 0.5 (it refuses, like
        :meth:`predict_proba`, beyond ``max_proba_bytes``: use
        :meth:`predict_topk` for large label spaces).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        check_is_fitted(self)
        if self._kind == "multiclass":
            return self.predict_topk(X, 1)[0][:, 0]
        P = self.predict_proba(X)
        return (P > 0.5).astype(np.int64)


    def __getstate__(self):
        state = super().__getstate__()  # a copy (see _VersionedStateMixin)
        # Adam's moments (twice the weights) are saved only for a model that
        # partial_fit is training, which then continues exactly as the
        # original would; a model from fit() is saved without them (its
        # weights only), and a later partial_fit starts fresh moments.
        if not getattr(self, "_n_partial_calls", 0):
            state.pop("_opt_state", None)
        state.pop("_inv_cache", None)
        state.pop("_gpu_cache", None)
        return state


def _auto_loss(kind, y):
    """Softmax unless the samples carry 4 labels or more on average."""
    if kind == "multiclass":
        return "softmax"
    n_labelled = max(1, int(np.count_nonzero(np.diff(y.indptr))))
    return "softmax" if y.nnz / n_labelled < 4 else "sigmoid"


class _BarUpdate:
    """Picklable progress callback: updates the bar only in this process."""

    def __init__(self, bar):
        self.bar = bar
        self.pid = os.getpid()

    def __getstate__(self):
        return {"bar": None, "pid": self.pid}

    def __call__(self, n, loss):
        if self.bar is not None and os.getpid() == self.pid:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(n)


def _train_group_one_blas_thread(parent_pid, *args, **kwargs):
    """``train_group`` with BLAS limited to one thread in a worker process.

    In the parent's threads the limit is set once around the whole
    ``Parallel`` call (threadpoolctl's limits are process-wide).
    """
    if os.getpid() == parent_pid:
        return rm.train_group(*args, **kwargs)
    with threadpool_limits(limits=1, user_api="blas"):
        return rm.train_group(*args, **kwargs)


def _fit_one_estimator(est, X, y, sample_weight, family, n_buckets, incremental):
    """Fit one repetition's scikit-learn classifier on bucket targets."""
    if sp.issparse(y):
        rows = np.repeat(np.arange(y.shape[0]), np.diff(y.indptr))
        cols = family(y.indices)[0].astype(np.int64)
        yb = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(y.shape[0], n_buckets))
        yb.data[:] = 1
        yb = yb.toarray().astype(np.int64)
    else:
        yb = family(y)[0].astype(np.int64)
    kw = {} if sample_weight is None else {"sample_weight": sample_weight}
    if incremental:
        est.partial_fit(X, yb, classes=np.arange(n_buckets), **kw)
    else:
        est.fit(X, yb, **kw)
    return est


def _estimator_bucket_proba(est, X, n_buckets, kind):
    """(n, B) bucket probabilities from one fitted scikit-learn classifier."""
    proba = est.predict_proba(X)
    if isinstance(proba, list):  # multi-output style: one (n, n_classes) per bucket
        proba = np.column_stack([_positive_proba(p, c) for p, c in zip(proba, est.classes_)])
    proba = np.asarray(proba)
    if kind == "multilabel":
        return proba
    out = np.zeros((proba.shape[0], n_buckets), dtype=np.float64)
    out[:, np.asarray(est.classes_, dtype=np.int64)] = proba
    return out


def _positive_proba(p, classes):
    """P(bucket positive) from one output of a multi-output classifier: the
    column of class 1, or 0 where the bucket was never positive in training
    (then ``classes`` is ``[0]`` and the only column is P(0))."""
    hit = np.flatnonzero(np.asarray(classes) == 1)
    return p[:, hit[0]] if len(hit) else np.zeros(p.shape[0])
