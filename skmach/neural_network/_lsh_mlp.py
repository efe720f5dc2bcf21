"""LSH-sparse multi-layer perceptron classifier (SLIDE-style), scikit-learn API."""

import copy
import math
import time
import warnings
from contextlib import closing
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from threadpoolctl import threadpool_limits

from .._device import resolve_device
from .._kernels import n_threads_for, numba_threads, threadsafe_layer
from .._kernels._lsh_train import take_rows
from ..base import N_JOBS_CONSTRAINT, _VersionedStateMixin
from ..utils._input import check_kernel_input, check_training_finite
from ..utils._math import log_softmax, softmax
from ..utils._progress import progress_bar
from ..utils._targets import check_same_classes, encode_targets
from ..utils._topk import check_k, topk
from ._base import SparseNetwork


#: ``lsh_layers="auto"``: widths from which a layer is LSH-sparse. Output:
#: measured crossover of the default LSH output layer over 128 hidden units
#: (``benchmarks/results/lsh_mlp_crossover.md``, 4,800 synthetic samples,
#: median of 5 runs: 0.91x the dense layer's speed at 1,000 classes, 1.10x at
#: 2,000, 1.36x at 4,000, 1.34x at 8,000, 1.50x at 16,000, same accuracy; the
#: first rounds' code was 1.3x slower at 2,000-4,000; delicious, 983 labels:
#: slower with the default tables, 1.23x faster at 1 thread (1.25x at 2) at
#: about the same P@1 only with tables tuned to prune, L=10 K=8 and 15%, see
#: benchmarks/results/lsh_mlp_notes.md). Hidden: MNIST's
#: 1,000-unit layer at 5% is 2.4-2.7x faster per epoch at 1 thread (2.3-2.6x at
#: 2, with its selection on a thread of its own) and 0.5 points less accurate with tuned
#: retrieval (L=70, a 48-dim sketch, Adam step 2e-3; about 1.1 points with
#: the default tables and sketch; 2.4 points before re-ranking), so hidden
#: layers stay dense unless wide.
_AUTO_MIN_HIDDEN = 4096
_AUTO_MIN_OUTPUT = 4096
#: a hidden LSH layer whose tables return fewer bucket entries per sample
#: than this fraction of its budget is warned about after the first epoch:
#: its active sets are then mostly random padding, a random k-winners layer
#: that does not learn (400 hidden units over 60 dense features: 0.74 entries
#: for 20 active units, training accuracy 0.16). Not applied to the output
#: layer, whose padding is a sampled softmax (``padding_weight``): there the
#: default tables over sparse inputs retrieve 1-2 entries per sample and the
#: layer still matches the dense one (``lsh_mlp_crossover.md``).
_FEW_CANDIDATES = 0.1
#: the label matrix's rows are gathered without their values (take_rows)
_NO_VALUES = np.zeros(0, dtype=np.float32)


def _budget_to_int(budget, n_out):
    if isinstance(budget, Integral) and not isinstance(budget, bool):
        return int(min(max(budget, 1), n_out))
    # floor (at least 1), so that the active fraction never exceeds the budget
    return int(min(n_out, max(1, math.floor(float(budget) * n_out + 1e-9))))


class LSHSparseMLPClassifier(_VersionedStateMixin, ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron trained on the neurons an LSH index retrieves.

    Each LSH-enabled layer keeps ``n_tables`` hash tables of its neurons'
    weight vectors (Spring & Shrivastava, KDD 2017; SLIDE, Chen et al.,
    MLSys 2020). For every sample, the layer input is hashed, the neurons
    sharing a bucket with it form a candidate set, and only the chosen active
    neurons (at most ``active_budget``) are computed, back-propagated and
    updated. In the output layer the true labels' neurons are always active and
    the softmax is normalised over the active set during training. Tables of
    updated neurons are re-hashed after ``rebuild_interval * exp(rebuild_decay * r)``
    batches, ``r`` being the number of rebuilds so far.

    With ``lsh_layers="none"`` (or ``active_budget=1.0``) the same code trains
    the plain dense network (BLAS products, in-place Adam).

    The work is done by compiled kernels (Numba): per-sample forward and
    backward over the active sets, parallel over samples; gradients summed
    per neuron through a counting-sort inverse map (race-free, the same for
    any number of threads) with the Adam step fused and applied in place to
    the touched rows only (a row an LSH layer skipped catches up the momentum
    steps dense Adam would have taken, in closed form, in the same pass: the
    optimiser is dense Adam on the sampled gradient, not a lazy one, apart
    from the L2 term of the skipped steps); hashing
    that visits only the non-zeros of sparse inputs; tables with bounded buckets; the active set chosen from a
    histogram of collision counts, without sorting.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(1000,)
        ReLU hidden layers.
    lsh_layers : {"auto", "hidden", "output", "all", "none"} or tuple of bool, \
default="auto"
        Which layers are LSH-sparse (a tuple gives one flag per layer, hidden
        layers then the output layer). ``"auto"`` puts LSH where it pays: on
        the output layer when there are at least 4,096 classes, on hidden
        layers of at least 4,096 units; narrower layers are dense (on them
        the dense BLAS product is faster than hashing and gathering).
    hash_family : {"dwta", "simhash"}, default="dwta"
        Densified winner-take-all or sparse signed random projections.
    n_tables : int, default=50
        Hash tables per layer (``L``), at most 10,000.
    n_bits : int, default=6
        Elementary hashes per table code (``K``; bits for SimHash, WTA hashes
        of 3 bits each for DWTA).
    active_budget : float in (0, 1] or int, default=0.05
        Active neurons per sample and LSH layer: a fraction of the layer's
        width, or a count.
    selection : {"topk", "sample", "union", "threshold"}, default="topk"
        How the active set is chosen among retrieved neurons: most collisions
        first; during training a random draw with probability proportional to
        the collision count (adaptive-dropout-like; most collisions first at
        prediction); any retrieved neuron (random subset when over budget); or
        only neurons colliding in at least ``collision_threshold`` tables.
    collision_threshold : int, default=2
        Used by ``selection="threshold"``.
    rerank : int, default=10
        For an LSH *first* layer: the ``rerank * budget`` neurons with the most
        collisions are candidates, re-scored by their pre-activation
        ``w.x + b`` computed in a ``sketch_dim``-dimensional principal
        subspace of the training input (from 2,000 rows at the start of
        ``fit``, or of the first ``partial_fit`` call's rows), and the
        ``budget`` best are active; 0 keeps the collision counts' choice.
        Costs ``sketch_dim + 1`` multiply-adds per candidate, and
        ``sketch_dim`` per input feature for a query's sketch (computed once
        per training row); the neurons' sketches are refreshed with the
        tables. The collision counts rank the neurons poorly (on MNIST the
        top 5% by collisions hold about a third of the true top 5%): with 5%
        of 1,000 hidden units active, ``rerank=10`` raised test accuracy on
        MNIST from 0.955 to 0.969 (0.972 with ``learning_rate=2e-3``, 0.974
        with ``n_tables=70`` and ``sketch_dim=48`` as well, about 10% more
        time per epoch; dense 0.980), on Convex from 0.68 to 0.73 and on
        Rectangles from 0.90 to 0.93, at about the same training time (the
        active sets of a batch overlap more, so fewer rows are updated).
        Later layers and output layers ignore it (also an LSH output layer
        with no hidden layer before it).
    sketch_dim : int, default=32
        Dimension of the re-ranking sketch (``rerank``).
    hard_negatives : int, default=0
        For an LSH *output* layer: each class remembers this many hard
        negatives, the outputs that scored highest against its training
        samples (each sample reports the 16 largest logits among its active
        negatives, shared among its labels; a class keeps the most frequent
        by the space-saving rule), and a training sample's active set holds
        its labels' hard negatives besides its labels and what the tables
        retrieve, within the same budget (at most half of it). The tables
        retrieve outputs similar to the sample; the classes it is confused
        with are often not among them. It pays where classes have many
        training samples: on debian-paths (24,288 classes, about 50 paths
        each; 1% active, 2 epochs) ``hard_negatives=32`` raised test P@1
        from 0.916 to 0.936-0.940 (dense output: 0.945-0.946; 0.936 with the
        padding reserve described under ``padding_weight``), on a synthetic set of
        10,000 classes (``make_extreme_classification``, 48,000 samples, 3
        epochs, default settings) from 0.773 to 0.781. Where most classes
        have a sample or none it costs: 100,000 classes over 40,000
        samples (0.5% active, 1 epoch), P@1 0.446 to 0.421 and 38% more
        time per epoch; hence 0 (off) by default. Costs ``hard_negatives``
        int32 ids and counts per class (32: 256 MB for 1,000,000 classes);
        prediction is unchanged. Other layers ignore it.
    gradient_threshold : float in [0, 1), default=0.0
        For an LSH *output* layer: in training, the active outputs whose
        softmax gradient ``|p - y|`` is below this value are left out of the
        backward pass and the update; the loss still counts them. Late in
        training most active negatives have tiny probabilities, so a batch
        updates far fewer rows than it computes. It is not an unbiased estimate
        of the gradient: the outputs left out are not pushed down. On
        debian-paths (24,288 classes, about one per path; 1% active, 32 hard
        negatives, 2 epochs) 0.003 raised test P@1 from 0.935 to 0.956 (dense
        output: 0.945) and cut the time per epoch from 82 to 62 s at 2 threads
        (50 tables; 57-61 s and P@1 0.956-0.957 with 30). On delicious (983
        labels, about 19 per sample, 20% active) the same value made the fit
        collapse (test P@1 0.64 to 0.18; 0.001 left it at 0.64), and fits whose
        targets have two labels or more per sample on average warn. Unbiased
        variants (a small gradient kept with probability ``|p - y|`` over the
        threshold and scaled up to it; or the kept gradients
        rescaled to each sample's totals) were stable on delicious but, on
        debian-paths, lowered P@1 or kept most of the outputs
        (``benchmarks/results/lsh_mlp_notes.md``, thirteenth round). Hence 0
        (off) by default. Other layers ignore it.
    min_active : float in [0, 1], default=1.0
        Samples that retrieve fewer than ``min_active * budget`` neurons are
        padded with random ones (fixed ones at prediction, so that a sample's
        prediction never depends on the rest of the batch).
    padding_weight : {"importance", "none"}, default="importance"
        How an LSH output layer's softmax counts the random padding neurons
        during training. ``"importance"``: each padding neuron, a uniform draw
        among the outputs not selected, stands for all of them (its score gets
        ``log(not selected / padding)`` inside the softmax), so that the
        softmax over the active set estimates the full one and outputs never
        retrieved are still pushed down (sampled softmax with importance
        weights); with ``hard_negatives``, a tenth of the budget is then kept
        for the padding, so that the estimate never rests on a few slots
        standing for thousands of outputs (at 0.5% of debian-paths' outputs,
        without that reserve, the fit collapsed: validation P@1 0.27 against
        0.78). ``"none"``: the plain softmax over the active set. Only
        training changes. On debian-paths (1% of 24,288 outputs active) it
        raised validation P@1 from 0.70 to 0.78 (400,000 paths, 1 epoch) and
        test P@1 from 0.83 to 0.88 (all 1.2 million, 2 epochs); on a
        synthetic set with more classes than training samples
        (``make_extreme_classification``, 100,000 classes, 40,000 samples)
        it lowered P@1 from 0.45 to 0.39, and on the small demo data set
        (about ten samples per class) it costs precision at small budgets:
        ``"none"`` is the better choice there. Worth a validation run.
    bucket_size : int, default=128
        Neurons returned per bucket at most.
    rebuild_interval : int, default=50
        Batches before the first table rebuild (``N0``).
    rebuild_decay : float, default=0.1
        Growth rate ``lambda`` of the rebuild interval.
    output_scoring : {"full", "lsh"}, default="full"
        At prediction, score every output neuron, or only those an LSH output
        layer retrieves (the others get probability 0; a sample that
        retrieves none is scored in full). Hidden LSH layers always use
        their index.
    alpha : float, default=1e-4
        L2 penalty.
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam step size.
    n_epochs : int, default=10
        Maximum passes over the data in :meth:`fit`.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when the
        validation score (accuracy, or precision@1 for multi-label) stops
        improving by ``tol`` for ``n_iter_no_change`` epochs; the training loss
        is used otherwise.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    tol : float, default=1e-4
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        With 1, one progress bar over epochs x batches shows the current
        loss; 0 prints nothing.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where prediction runs. ``"cuda"``: each layer's product on the GPU
        with CuPy (``skmach._gpu``), the LSH retrieval of hidden LSH layers
        on the CPU; training runs on the CPU kernels. Without CuPy or a GPU,
        ``"cuda"`` raises a ValueError. ``"auto"`` stays on the CPU until the
        GPU code has passed a device run (``benchmarks/gpu_check.sh``).
    n_jobs : int, default=None
        Threads of the compiled kernels during ``fit`` and prediction
        (joblib semantics: None is 1, -1 all cores). BLAS keeps one thread;
        the large products of a dense layer over a dense input are split
        into fixed blocks that the threads share. With an LSH first hidden
        layer and 2 or more threads, half of them select that layer's active
        sets a few batches ahead, on a thread of their own, while the others
        train. The model is the same for any value.

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    n_outputs_ : int
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_scores_ : list of float or None
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    active_fraction_ : ndarray of shape (n_layers,)
        Mean fraction of each layer's neurons computed per training sample
        (1.0 for dense layers).
    candidates_per_sample_ : ndarray of shape (n_layers,)
        Mean number of bucket entries examined per training sample in each
        layer (the retrieval cost; the layer width for dense layers).
    lsh_layers_ : ndarray of bool
        Which layers are LSH-sparse.
    training_flops_ : float
        Work spent in training, in multiply-add equivalents: forward and
        backward (weight and input gradients) over the active neurons, all
        hashing (queries and table rebuilds), retrieval (bucket entries
        examined, selection) and the optimiser (4 per parameter updated).
    training_flops_ratio_ : float
        ``training_flops_`` relative to the dense network on the same batches
        (forward, backward and Adam over every parameter).
    hashing_flops_ : float
    rebuild_iterations_ : list of int
        Batch counts at which the tables were rebuilt.
    epoch_times_ : list of float
        Wall-clock seconds per epoch.
    epoch_cpu_times_ : list of float
        CPU seconds (process time) per epoch.
    time_breakdown_ : dict
        Wall-clock seconds spent in hashing, retrieval (look-ups and
        selection), forward, loss, backward, update (gradient sums and Adam)
        and table rebuilds, over all of training. Where the first layer's
        active sets are selected ahead on their own thread (see ``n_jobs``),
        its hashing and retrieval overlap the rest: the parts can add up to
        more than the training time.

    Notes
    -----
    Multi-label targets are indicator matrices (dense or sparse); the loss is
    the softmax cross-entropy against the uniform distribution over a
    sample's labels (as in SLIDE). Rows without any label are accepted and
    ignored by the loss. :meth:`predict` then returns every label whose
    probability is at least half the top one.

    Examples
    --------
    >>> import numpy as np
    >>> from skmach.neural_network import LSHSparseMLPClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 5)); y = (X[:, 0] > 0).astype(int)
    >>> clf = LSHSparseMLPClassifier(hidden_layer_sizes=(64,), lsh_layers="hidden",
    ...                              active_budget=0.25,
    ...                              n_tables=8, n_bits=3, n_epochs=20,
    ...                              learning_rate=1e-2, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    >>> bool(clf.active_fraction_[0] <= 0.25)
    True
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "lsh_layers": [StrOptions({"auto", "hidden", "output", "all", "none"}), tuple, list],
        "hash_family": [StrOptions({"dwta", "simhash"})],
        "n_tables": [Interval(Integral, 1, 10_000, closed="both")],
        "n_bits": [Interval(Integral, 1, 62, closed="both")],
        "active_budget": [
            Interval(Real, 0, 1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "selection": [StrOptions({"topk", "sample", "union", "threshold"})],
        "collision_threshold": [Interval(Integral, 1, None, closed="left")],
        "rerank": [Interval(Integral, 0, None, closed="left")],
        "sketch_dim": [Interval(Integral, 1, None, closed="left")],
        "hard_negatives": [Interval(Integral, 0, None, closed="left")],
        "gradient_threshold": [Interval(Real, 0, 1, closed="left")],
        "min_active": [Interval(Real, 0, 1, closed="both")],
        "padding_weight": [StrOptions({"importance", "none"})],
        "bucket_size": [Interval(Integral, 1, None, closed="left")],
        "rebuild_interval": [Interval(Integral, 1, None, closed="left")],
        "rebuild_decay": [Interval(Real, 0, None, closed="left")],
        "output_scoring": [StrOptions({"full", "lsh"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "n_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "n_jobs": N_JOBS_CONSTRAINT,
    }

    def __init__(
        self,
        hidden_layer_sizes=(1000,),
        *,
        lsh_layers="auto",
        hash_family="dwta",
        n_tables=50,
        n_bits=6,
        active_budget=0.05,
        selection="topk",
        collision_threshold=2,
        rerank=10,
        sketch_dim=32,
        hard_negatives=0,
        gradient_threshold=0.0,
        min_active=1.0,
        padding_weight="importance",
        bucket_size=128,
        rebuild_interval=50,
        rebuild_decay=0.1,
        output_scoring="full",
        alpha=1e-4,
        batch_size=128,
        learning_rate=1e-3,
        n_epochs=10,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        random_state=None,
        verbose=0,
        device="auto",
        n_jobs=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.lsh_layers = lsh_layers
        self.hash_family = hash_family
        self.n_tables = n_tables
        self.n_bits = n_bits
        self.active_budget = active_budget
        self.selection = selection
        self.collision_threshold = collision_threshold
        self.rerank = rerank
        self.sketch_dim = sketch_dim
        self.hard_negatives = hard_negatives
        self.gradient_threshold = gradient_threshold
        self.min_active = min_active
        self.padding_weight = padding_weight
        self.bucket_size = bucket_size
        self.rebuild_interval = rebuild_interval
        self.rebuild_decay = rebuild_decay
        self.output_scoring = output_scoring
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ #
    # Validation helpers
    # ------------------------------------------------------------------ #
    def _check_params(self, n_outputs=None):
        sizes = np.asarray(self.hidden_layer_sizes).ravel() if not np.isscalar(
            self.hidden_layer_sizes) else np.asarray([self.hidden_layer_sizes])
        if sizes.size and (not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1)):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers; got {self.hidden_layer_sizes!r}"
            )
        n_layers = sizes.size + 1
        flags = self.lsh_layers
        if isinstance(flags, str) and flags == "auto":
            widths = [int(s) for s in sizes] + [n_outputs or 0]
            flags = [w >= _AUTO_MIN_HIDDEN for w in widths[:-1]]
            flags.append(widths[-1] >= _AUTO_MIN_OUTPUT)
        elif isinstance(flags, str):
            flags = {
                "hidden": [True] * (n_layers - 1) + [False],
                "output": [False] * (n_layers - 1) + [True],
                "all": [True] * n_layers,
                "none": [False] * n_layers,
            }[flags]
        else:
            if not all(isinstance(f, (bool, np.bool_)) or (isinstance(f, Integral) and f in (0, 1))
                       for f in flags):
                raise TypeError(
                    "lsh_layers, as a tuple or list, must hold one bool (or 0/1) per layer "
                    f"(hidden layers then the output layer); got {flags!r}"
                )
            flags = [bool(f) for f in flags]
            if len(flags) != n_layers:
                raise ValueError(
                    f"lsh_layers has {len(flags)} flags but the network has {n_layers} "
                    "layers (hidden layers then the output layer)"
                )
        if self.hash_family == "dwta" and self.n_bits * 3 > 62:
            raise ValueError(f"n_bits must be <= 20 with hash_family='dwta'; got {self.n_bits}")
        resolve_device(self.device, supported=("cpu", "cuda"), owner="LSHSparseMLPClassifier")
        return [int(s) for s in sizes], flags

    def _validate_X(self, X, reset):
        return check_kernel_input(validate_data(
            self, X, reset=reset, accept_sparse="csr", dtype=[np.float32, np.float64],
            ensure_all_finite=True,
        ))

    def _init_network(self, n_features, n_outputs, rng, enc):
        """A new network; ``enc``: the encoded targets of the first fit (for
        the warning about gradient_threshold)."""
        sizes, flags = self._check_params(n_outputs)
        self.device_ = resolve_device(self.device, supported=("cpu", "cuda"),
                                      owner="LSHSparseMLPClassifier")
        self.__dict__.pop("_gpu_cache", None)
        all_sizes = [n_features] + sizes + [n_outputs]
        budgets = [_budget_to_int(self.active_budget, n) for n in all_sizes[1:]]
        if flags[-1] and budgets[-1] < 2:
            # the true label is always active: a softmax over it alone has
            # loss 0 and no gradient, so the layer would never learn
            raise ValueError(
                f"An LSH output layer with active_budget={self.active_budget!r} computes "
                f"{budgets[-1]} of its {n_outputs} outputs per sample; its softmax needs at "
                "least 2. Raise active_budget, or keep the output layer dense (lsh_layers)."
            )
        self._net = SparseNetwork(
            all_sizes, flags, budgets, hash_family=self.hash_family, n_tables=self.n_tables,
            n_bits=self.n_bits, selection=self.selection, threshold=self.collision_threshold,
            min_active=self.min_active, padding_weight=self.padding_weight,
            bucket_size=self.bucket_size,
            rebuild_interval=self.rebuild_interval, rebuild_decay=self.rebuild_decay,
            alpha=self.alpha, learning_rate=self.learning_rate,
            rerank=self.rerank, sketch_dim=self.sketch_dim,
            hard_negatives=self.hard_negatives,
            gradient_threshold=self.gradient_threshold if flags[-1] else 0.0,
            rng=np.random.default_rng(rng.randint(np.iinfo(np.int32).max)),
            n_threads=n_threads_for(self.n_jobs),
        )
        self.lsh_layers_ = np.array([la.lsh for la in self._net.layers])
        labels_per_sample = (enc.nnz / max(enc.shape[0], 1) if self._kind == "multilabel"
                             else 1.0)
        if self._net.gradient_threshold > 0 and labels_per_sample >= 2:
            warnings.warn(
                f"gradient_threshold={self.gradient_threshold!r} with {labels_per_sample:.1f} "
                "labels per sample: the outputs it leaves out of the update are not pushed "
                "down, and such fits can collapse (delicious, about 19 labels per sample: "
                "test P@1 0.64 -> 0.18 at 0.003). Check it on a validation split, or leave "
                "it at 0.",
                # the caller of fit or partial_fit (through _fit_context,
                # fit/partial_fit, _fit/_partial_fit, here)
                UserWarning, stacklevel=5,
            )
        self.loss_curve_ = []
        self.validation_scores_ = [] if self.early_stopping else None
        self.epoch_times_ = []
        self.epoch_cpu_times_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self._best = np.inf if not self.early_stopping else -np.inf
        self._no_improve = 0

    def _encode(self, y, classes=None):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        kind, classes_, enc = encode_targets(y, classes)
        if kind == "multiclass" and len(classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes; y has "
                f"{len(classes_)} class(es)."
            )
        return kind, classes_, enc

    @staticmethod
    def _positives(kind, enc, rows):
        """True labels of ``rows``: ``plab[pptr[i]:pptr[i + 1]]`` for row ``i``."""
        if kind == "multiclass":
            return np.arange(len(rows) + 1, dtype=np.int64), enc[rows].astype(np.int64)
        ptr, labels, _ = take_rows(enc.indptr, enc.indices, _NO_VALUES, np.asarray(rows))
        return ptr, labels

    def _threads(self, n=None):
        """Numba's thread limit for a fit or a prediction, and BLAS on one
        thread.

        BLAS runs single-threaded: OpenBLAS's own threads split a product's
        sums otherwise than one thread does (a dense fit at ``n_jobs=2`` ended
        with other weights than at 1), and its idle workers spin after each
        call, taking the cores from the parallel kernels (MNIST at 2 threads:
        1.1-1.9 s per epoch with BLAS at 2 threads, 0.8 s at 1,
        ``lsh_mlp_notes.md``). The large products of training are split into
        blocks on the fit's threads instead (``SparseNetwork.gemm_threads``). ``n``:
        the threads, if not ``n_jobs``'s (the training thread's share).
        """
        n = n_threads_for(self.n_jobs) if n is None else n
        return numba_threads(n), threadpool_limits(1, user_api="blas")

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def _fit_sketch(self, X):
        """The re-ranking's subspace (:meth:`SparseNetwork.fit_sketch`), its
        SVD with BLAS on one thread, as in the fit (two OpenBLAS threads took
        MNIST's 0.07 s to 0.10-0.19 s, and their sums differ)."""
        nt, bl = self._threads()
        with nt, bl:
            self._net.fit_sketch(X)

    def _run_epoch(self, X, kind, enc, rng, bar=None, cached=False):
        net = self._net
        n = X.shape[0]
        order = rng.permutation(n)
        bs = min(self.batch_size, n)
        total = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        # with an LSH first hidden layer and 2+ threads, one half of them
        # selects its active sets ahead (SparseNetwork.epoch_batches)
        n_threads = n_threads_for(self.n_jobs)
        ahead = n_threads // 2 if net.prefetches() and threadsafe_layer() else 0
        nt, bl = self._threads(n_threads - ahead)
        gemm = net.gemm_threads(n_threads - ahead, sp.issparse(X))
        batches = net.epoch_batches(X, order, bs, cached=cached, prefetch=ahead)
        with nt, bl, gemm, closing(batches):
            for rows, seeds, prepared in batches:
                pptr, plab = self._positives(kind, enc, rows)
                loss = net.train_batch(None, pptr, plab, rows=rows if cached else None,
                                       seeds=seeds, prepared=prepared)
                total += loss * len(rows)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=self.n_iter_ + 1, loss=f"{loss:.4f}", refresh=False)
            net.flush_momentum()
            # L2 term of the objective, with the weights at the end of the
            # epoch (with BLAS still on one thread: the same sum at any n_jobs);
            # not finite if a weight is not
            penalty = net.penalty()
        check_training_finite((total, penalty))
        self.epoch_times_.append(time.perf_counter() - t0)
        self.epoch_cpu_times_.append(time.process_time() - c0)
        self.t_ += n
        self.loss_curve_.append(total / n + self.alpha * penalty / bs)
        self._update_attributes()
        if self.n_iter_ == 0:
            self._check_retrieval()

    def _check_retrieval(self):
        """Warn about LSH layers whose tables return almost nothing."""
        layers = self._net.layers
        for i, layer in enumerate(layers[:-1]):
            found = self.candidates_per_sample_[i]
            if layer.lsh and found < _FEW_CANDIDATES * layer.budget:
                warnings.warn(
                    f"The hash tables of LSH hidden layer {i} returned {found:.1f} bucket "
                    f"entries per training sample for {layer.budget} active units: its "
                    "active sets are mostly random units, and such a layer learns little. "
                    "Shorter codes (n_bits) or more n_tables retrieve more; a dense layer "
                    f"(lsh_layers='auto' keeps hidden layers under {_AUTO_MIN_HIDDEN} units "
                    "dense) may be the better choice.",
                    # the caller of fit or partial_fit (through _fit_context,
                    # fit/partial_fit, _fit/_partial_fit, _run_epoch, here)
                    UserWarning, stacklevel=6,
                )
        # an output layer's padding (min_active) is its sampled softmax; without
        # it, what the tables miss leaves the true labels alone in the softmax
        out, found = layers[-1], self.candidates_per_sample_[-1]
        if out.lsh and self.min_active == 0 and found < _FEW_CANDIDATES * out.budget:
            warnings.warn(
                f"The hash tables of the LSH output layer returned {found:.1f} bucket entries "
                f"per training sample for {out.budget} active outputs, and min_active=0 pads "
                "none: the softmax sees little besides the true labels and learns little. "
                "Raise min_active (the default, 1.0, pads with random outputs), or use "
                "shorter codes (n_bits) or more n_tables.",
                UserWarning, stacklevel=6,
            )

    def _update_attributes(self):
        net = self._net
        seen = max(net.n_samples_seen, 1)
        self.active_fraction_ = net.active_sum / seen
        self.candidates_per_sample_ = net.examined_sum / seen
        self.training_flops_ = net.flops
        self.hashing_flops_ = net.hash_flops
        self.training_flops_ratio_ = net.flops / net.dense_flops if net.dense_flops else 1.0
        self.rebuild_iterations_ = list(net.rebuild_batches)
        self.time_breakdown_ = dict(net.times)

    def _val_score(self, X, kind, enc):
        scores = self._scores(X)
        if kind == "multiclass":
            return float(np.mean(np.argmax(scores, axis=1) == enc))
        top = np.argmax(scores, axis=1)
        return float(np.mean(np.asarray(enc[np.arange(len(top)), top]).ravel() > 0))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train from scratch for up to ``n_epochs`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a (dense or sparse) binary indicator matrix.

        Returns
        -------
        self
        """
        # A fit that fails half-way (an exception, a KeyboardInterrupt) leaves
        # the estimator as it was: fit builds a new network, so a shallow copy
        # of the state is enough.
        saved = dict(self.__dict__)
        try:
            return self._fit(X, y)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit(self, X, y):
        # a sparse X comes sorted (check_kernel_input): the batches are then
        # gathered by a kernel
        X = self._validate_X(X, reset=True)
        kind, classes, enc = self._encode(y)
        if X.shape[0] != enc.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {X.shape[0]} and {enc.shape[0]}"
            )
        self._kind = kind
        self._sparse_y = sp.issparse(y)
        self.classes_ = classes
        self.n_outputs_ = len(classes)
        rng = check_random_state(self.random_state)
        self._init_network(X.shape[1], self.n_outputs_, rng, enc)
        if self.early_stopping:
            n = X.shape[0]
            n_val = math.ceil(self.validation_fraction * n)  # as train_test_split
            if n - n_val < 1:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no training "
                    f"samples out of {n}."
                )
            # stratified where every class has 2 samples and each part can hold
            # every class (else train_test_split refuses)
            counts = np.bincount(enc) if kind == "multiclass" else None
            stratify = enc if counts is not None and counts.min() >= 2 and min(
                n_val, n - n_val) >= len(counts) else None
            tr, va = train_test_split(
                np.arange(X.shape[0]), test_size=self.validation_fraction,
                random_state=rng.randint(np.iinfo(np.int32).max), stratify=stratify,
            )
            X_val, enc_val = X[va], enc[va]
            X, enc = X[tr], enc[tr]
        self._fit_sketch(X)
        n_batches = -(-X.shape[0] // min(self.batch_size, X.shape[0]))
        bar = progress_bar(self.n_epochs * n_batches, self.verbose, desc=type(self).__name__,
                           unit="batch")
        # the first layer's query buckets are hashed once (the input is fixed)
        self._net.set_input_cache(X.shape[0] if self.n_epochs > 1 else 0)
        with bar:
            for _ in range(self.n_epochs):
                self._run_epoch(X, kind, enc, rng, bar, cached=True)
                self.n_iter_ += 1
                if self.early_stopping:
                    val = self._val_score(X_val, kind, enc_val)
                    self.validation_scores_.append(val)
                    improved = val > self._best + self.tol
                    self._best = max(self._best, val)
                else:
                    cur = self.loss_curve_[-1]
                    improved = cur < self._best - self.tol
                    self._best = min(self._best, cur)
                self._no_improve = 0 if improved else self._no_improve + 1
                post = dict(epoch=self.n_iter_, loss=f"{self.loss_curve_[-1]:.4f}")
                if self.early_stopping:
                    post["val"] = f"{self.validation_scores_[-1]:.4f}"
                bar.set_postfix(**post)
                if self._no_improve >= self.n_iter_no_change:
                    break
        self._net.set_input_cache(0)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, starting from the current model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like, optional
            All classes, required on the first call for multi-class targets
            unless ``y`` already contains every class.

        Returns
        -------
        self
        """
        # partial_fit trains the network in place: a failure half-way restores
        # a deep copy taken before (one copy of the model per call).
        saved = copy.deepcopy(self.__dict__)
        try:
            return self._partial_fit(X, y, classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _partial_fit(self, X, y, classes):
        first = not hasattr(self, "_net")
        X = self._validate_X(X, reset=first)
        if first:
            kind, classes_, enc = self._encode(y, classes)
            self._kind = kind
            self._sparse_y = sp.issparse(y)
            self.classes_ = classes_
            self.n_outputs_ = len(classes_)
            self._rng = check_random_state(self.random_state)
            self._init_network(X.shape[1], self.n_outputs_, self._rng, enc)
            self._fit_sketch(X)
        else:
            # _fit_context checks the parameters on the first call only;
            # set_params may have changed one since
            self._validate_params()
            if classes is not None:
                check_same_classes(classes, self.classes_)
            kind, _, enc = self._encode(y, self.classes_)
            if kind != self._kind:
                raise ValueError(f"y is {kind} but the model was fitted on {self._kind} targets")
        if X.shape[0] != enc.shape[0]:
            raise ValueError(
                f"X and y have inconsistent numbers of samples: {X.shape[0]} and {enc.shape[0]}"
            )
        if not hasattr(self, "_rng"):
            self._rng = check_random_state(self.random_state)
        self._run_epoch(X, kind, enc, self._rng)
        self.n_iter_ += 1
        return self

    # ------------------------------------------------------------------ #
    # Prediction
    # ------------------------------------------------------------------ #
    def _scores(self, X):
        """Output scores; ``-inf`` for outputs not retrieved (``output_scoring='lsh'``)."""
        if getattr(self, "device_", "cpu") == "cuda":
            from .._gpu._lsh_mlp import LSHMLPDeviceCache, lsh_mlp_host_scores

            cache = self.__dict__.setdefault("_gpu_cache", LSHMLPDeviceCache())
            return lsh_mlp_host_scores(self._net, X, cache.get(self._net),
                                       output_lsh=self.output_scoring == "lsh")
        net = self._net
        out_lsh = self.output_scoring == "lsh"
        n = X.shape[0]
        chunk = max(1, min(n, 4096, (1 << 22) // max(self.n_outputs_, 1)))
        res = np.empty((n, self.n_outputs_), dtype=np.float64)
        nt, bl = self._threads()
        with nt, bl:
            for s in range(0, n, chunk):
                out = net.scores(X[s:s + chunk], output_lsh=out_lsh)
                if out[0] == "active":
                    _, st, en, ind, z = out[:5]
                    block = np.full((len(st), self.n_outputs_), -np.inf)
                    rows = np.repeat(np.arange(len(st)), en - st)
                    pos = np.concatenate([np.arange(a, b) for a, b in zip(st, en)])
                    block[rows, ind[pos]] = z[pos]
                    # a sample that retrieves no output (min_active=0) is
                    # scored in full (all -inf: uniform, the first class won)
                    empty = np.flatnonzero(en == st)
                    if len(empty):
                        block[empty] = net.scores(X[s:s + chunk][empty], output_lsh=False)[1]
                    res[s:s + chunk] = block
                else:
                    res[s:s + chunk] = out[1]
        return res

    def _check_predict(self, X):
        check_is_fitted(self, "_net")
        from .._gpu._validation import check_prediction_input

        return check_prediction_input(self, X, getattr(self, "device_", "cpu"),
                                      accept_sparse=("csr",), dtype=(np.float32, np.float64))

    def __getstate__(self):
        state = super().__getstate__()  # a copy (see _VersionedStateMixin)
        state.pop("_gpu_cache", None)  # device copies of the weights
        return state

    def __setstate__(self, state):
        # estimators pickled before ``padding_weight`` existed trained without
        # it, and those pickled before ``rerank`` without re-ranking
        super().__setstate__({"padding_weight": "none", "rerank": 0, "sketch_dim": 32,
                              "hard_negatives": 0, "gradient_threshold": 0.0, **state})

    def decision_function(self, X):
        """Output scores (logits) of the network.

        With ``output_scoring="lsh"``, outputs the index does not retrieve
        score ``-inf``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            The logits; for two classes, the difference of the two logits
            (positive favours ``classes_[1]``), shape ``(n_samples,)``.
        """
        z = self._scores(self._check_predict(X))
        if self._kind == "multiclass" and self.n_outputs_ == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict_proba(self, X):
        """Class probabilities (softmax of the scores).

        For multi-label models the row is the distribution over labels the
        model was trained to match (uniform over a sample's labels).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; each row sums to 1.
        """
        return softmax(self._scores(self._check_predict(X)), axis=1)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed from the scores (no
        ``log`` of an underflowed probability; ``-inf`` for outputs that
        ``output_scoring="lsh"`` leaves out).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)

        Examples
        --------
        >>> import numpy as np
        >>> from skmach import LSHSparseMLPClassifier
        >>> X = np.random.default_rng(0).normal(size=(40, 3))
        >>> clf = LSHSparseMLPClassifier(random_state=0).fit(X, X[:, 0] > 0)
        >>> bool(np.allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X)))
        True
        """
        return log_softmax(self._scores(self._check_predict(X)), axis=1)

    def predict(self, X):
        """Most probable class, or the likely labels for multi-label models.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,), or indicator matrix of shape \
(n_samples, n_classes)
            Multi-class: entries of ``classes_``. Multi-label: a 0/1 indicator
            matrix (CSR if ``y`` was sparse in :meth:`fit`, else a dense
            array) of the labels whose probability is at least half the best
            one.
        """
        scores = self._scores(self._check_predict(X))
        if self._kind == "multiclass":
            return self.classes_[np.argmax(scores, axis=1)]
        keep = scores >= (scores.max(axis=1, keepdims=True) - math.log(2.0))
        keep = keep.astype(np.int64)
        return sp.csr_matrix(keep) if self._sparse_y else keep

    def predict_topk(self, X, k):
        """The ``k`` most probable classes per sample, best first.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input samples.
        k : int
            Number of classes to return, in ``[1, n_classes]``.

        Returns
        -------
        labels : ndarray of shape (n_samples, k)
            Entries of ``classes_``.
        scores : ndarray of shape (n_samples, k)
            Their probabilities.
        """
        X = self._check_predict(X)
        k = check_k(k, self.n_outputs_)
        # a block of rows at a time: never an n_samples x n_classes matrix
        n = X.shape[0]
        step = max(1, min(n, (1 << 24) // max(self.n_outputs_, 1)))
        idx = np.empty((n, int(k)), dtype=np.int64)
        vals = np.empty((n, int(k)))
        for s in range(0, n, step):
            # ranked by the logits: probabilities that underflow to 0 would tie
            z = self._scores(X[s:s + step])
            idx[s:s + step] = topk(z, int(k))[0]
            vals[s:s + step] = np.take_along_axis(softmax(z, axis=1), idx[s:s + step], axis=1)
        return self.classes_[idx], vals

    def score(self, X, y, sample_weight=None):
        """Accuracy (multi-class) or precision@1 (multi-label).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            True labels, or a (dense or sparse) indicator matrix for
            multi-label models.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean accuracy, or the fraction of samples whose top-scored label
            is one of their true labels (precision@1).
        """
        check_is_fitted(self, "_net")
        if getattr(self, "_kind", "multiclass") == "multiclass":
            return super().score(X, y, sample_weight=sample_weight)
        X = self._check_predict(X)
        kind, _, Y = encode_targets(y, self.classes_, require_positive=False)
        if kind != "multilabel":
            raise ValueError(
                "This model was fitted on multi-label targets: y must be a 0/1 indicator "
                f"matrix of shape (n_samples, {self.n_outputs_}); got shape {np.shape(y)}."
            )
        check_consistent_length(X, Y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        top = np.argmax(self._scores(X), axis=1)
        hits = np.asarray(Y[np.arange(len(top)), top]).ravel() > 0
        return float(np.average(hits, weights=sample_weight))
