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
rows = []
if LSHSparseMLPClassifier is None:
    print("LSHSparseMLPClassifier is not available in this version: skipping")
else:
    for budget in budgets:
        clf = LSHSparseMLPClassifier(
            hidden_layer_sizes=(128,), lsh_layers="output", active_budget=budget,
            n_tables=8, n_bits=4, n_epochs=5, learning_rate=2e-3, random_state=0,
        )
        t0 = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_s = time.perf_counter() - t0
        p1 = precision_at_1_scorer(clf, X_test, y_test)
        rows.append((budget, clf.active_fraction_[-1], p1, clf.training_flops_,
                     clf.training_flops_ratio_, fit_s))
        print(f"budget={budget:<5} active output fraction={clf.active_fraction_[-1]:.3f} "
              f"P@1={p1:.3f} multiply-adds={clf.training_flops_:.3g} "
              f"({clf.training_flops_ratio_:.1%} of dense) fit {fit_s:.1f}s")

# %%
# Accuracy against active fraction and work
# -----------------------------------------
# Computing a few percent of the output neurons costs little accuracy here,
# while the training work falls nearly in proportion. (The wall-clock time
# of this pure-NumPy implementation does not fall as much: gathering the
# active neurons has its own cost.)
if rows:
    budget, frac, p1, flops, ratio, fit_s = map(np.array, zip(*rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(frac, p1, "o-")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("mean active fraction of the output layer (log scale)")
    axes[0].set_ylabel("P@1 (demo test set)")
    axes[0].set_title("Accuracy against active fraction")
    axes[1].plot(ratio, p1, "s-", color="C1")
    for b, x, y in zip(budget, ratio, p1):
        axes[1].annotate(f"{b:g}", (x, y), textcoords="offset points", xytext=(4, -10),
                         fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("training multiply-adds relative to dense (log scale)")
    axes[1].set_ylabel("P@1")
    axes[1].set_title("Accuracy against training work (labels: budget)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()
