"""
=================================================
LSH-sparse training: active fraction and accuracy
=================================================

:class:`~skmach.LSHSparseMLPClassifier` computes, for each sample, only the
neurons that a locality-sensitive hash index retrieves for it (SLIDE, Chen
et al. 2020). With ``lsh_layers="output"`` the sparse layer is the output
layer, whose width is the number of classes: the part that grows with ``K``.

The ``active_budget`` caps the fraction of output neurons computed (and
updated) per sample. This example trains the same network with budgets from
100% down to 2% on the embedded demo data, and plots precision at 1 against
the multiply-adds spent in training (``training_flops_``, counted by the
estimator, hashing included).

Each budget is trained twice, with the two ways the training softmax can
count the random padding neurons (``padding_weight``): ``"importance"``
(the default; each padding neuron stands for all the outputs left out, so
the active-set softmax estimates the full one) and ``"none"`` (the plain
softmax over the active set).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from skmach.datasets import load_demo
from skmach.metrics import precision_at_1_scorer

try:
    from skmach import LSHSparseMLPClassifier
except ImportError:
    try:
        from skmach.neural_network import LSHSparseMLPClassifier
    except ImportError:  # a version of skmach without the estimator
        LSHSparseMLPClassifier = None

X_train, X_test, y_train, y_test = load_demo()

budgets = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02]
weightings = ["importance", "none"]
rows = {w: [] for w in weightings}
if LSHSparseMLPClassifier is None:
    print("LSHSparseMLPClassifier is not available in this version: skipping")
else:
    for weighting in weightings:
        for budget in budgets:
            clf = LSHSparseMLPClassifier(
                hidden_layer_sizes=(128,), lsh_layers="output", active_budget=budget,
                n_tables=8, n_bits=4, n_epochs=5, learning_rate=2e-3,
                padding_weight=weighting, random_state=0,
            )
            t0 = time.perf_counter()
            clf.fit(X_train, y_train)
            fit_s = time.perf_counter() - t0
            p1 = precision_at_1_scorer(clf, X_test, y_test)
            rows[weighting].append((budget, clf.active_fraction_[-1], p1,
                                    clf.training_flops_ratio_))
            print(f"padding_weight={weighting!r:<12} budget={budget:<5} "
                  f"active output fraction={clf.active_fraction_[-1]:.3f} P@1={p1:.3f} "
                  f"multiply-adds={clf.training_flops_:.3g} "
                  f"({clf.training_flops_ratio_:.1%} of dense) fit {fit_s:.1f}s")

# %%
# On this small data set (4,500 training samples for 417 classes) the plain
# active-set softmax (``"none"``) keeps the dense network's precision down to
# 10% of the outputs and loses little at 5%, while the training work falls
# nearly in proportion. The importance weights cost precision here, more so
# at small budgets: with about ten samples per class, pushing every output
# down as the full softmax does slows the learning of the true ones. On the
# 1.2 million debian paths (about fifty per class) it is the other way
# round: the importance weights raise P@1 from 0.83 to 0.88 at 1% of the
# outputs (see the user guide), and on delicious they keep pruned tables
# within a point of dense. The choice is worth a validation run.
if any(rows.values()):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for weighting, marker in zip(weightings, "os"):
        budget, frac, p1, ratio = map(np.array, zip(*rows[weighting]))
        axes[0].plot(frac, p1, marker + "-", label=f"padding_weight={weighting!r}")
        axes[1].plot(ratio, p1, marker + "-", label=f"padding_weight={weighting!r}")
        if weighting == "none":
            for b, x, y in zip(budget, ratio, p1):
                axes[1].annotate(f"{b:g}", (x, y), textcoords="offset points",
                                 xytext=(4, -10), fontsize=8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("mean active fraction of the output layer (log scale)")
    axes[0].set_ylabel("P@1 (demo test set)")
    axes[0].set_title("Accuracy against active fraction")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("training multiply-adds relative to dense (log scale)")
    axes[1].set_ylabel("P@1")
    axes[1].set_title("Accuracy against training work (labels: budget)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
