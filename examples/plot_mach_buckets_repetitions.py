"""
==================================================
Buckets and repetitions: memory against accuracy
==================================================

MACH's two main knobs are the number of buckets ``B`` and of repetitions
``R``. Its weights take ``R * B * n_features`` floats, whatever the number of
classes ``K``:

- more **buckets** make each repetition's classifier finer (fewer classes
  share a bucket, so less mass from other classes leaks into a class's score);
- more **repetitions** make it unlikely that two classes collide in every
  repetition (the chance is about ``B ** -R``) and average out the noise of
  the individual classifiers.

This example fits a grid of ``(B, R)`` on the embedded demo data (500
classes) and plots precision at 1 against the model size: the memory/accuracy
trade-off of the count-min sketch.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from skmach import MACHClassifier
from skmach.datasets import load_demo
from skmach.metrics import precision_at_1_scorer

X_train, X_test, y_train, y_test = load_demo()

buckets = [4, 8, 16, 32, 64]
repetitions = [1, 2, 4, 8, 16]
p1 = np.zeros((len(buckets), len(repetitions)))
size_mb = np.zeros_like(p1)
t0 = time.perf_counter()
for i, B in enumerate(buckets):
    for j, R in enumerate(repetitions):
        clf = MACHClassifier(n_buckets=B, n_repetitions=R, n_epochs=5,
                             learning_rate=0.1, n_jobs=2, random_state=0)
        clf.fit(X_train, y_train)
        p1[i, j] = precision_at_1_scorer(clf, X_test, y_test)
        size_mb[i, j] = sum(c.nbytes for c in clf.coefs_) / 2**20
print(f"{p1.size} models in {time.perf_counter() - t0:.1f}s")

# %%
# Precision at 1 over the grid
# ----------------------------
fig, ax = plt.subplots(figsize=(5.5, 4))
im = ax.imshow(p1, cmap="viridis", origin="lower")
for i in range(len(buckets)):
    for j in range(len(repetitions)):
        ax.text(j, i, f"{p1[i, j]:.2f}", ha="center", va="center",
                color="white" if p1[i, j] < p1.max() * 0.7 else "black", fontsize=9)
ax.set_xticks(range(len(repetitions)), repetitions)
ax.set_yticks(range(len(buckets)), buckets)
ax.set_xlabel("repetitions R")
ax.set_ylabel("buckets B")
ax.set_title("P@1 on the demo test set (K=500)")
fig.colorbar(im, ax=ax)
fig.tight_layout()

# %%
# Accuracy against memory
# -----------------------
# Each line is one ``B``; points along it add repetitions. For a fixed memory
# budget ``R * B``, it is usually better to spend it on a moderate ``B`` and
# several repetitions than on one huge classifier: compare ``B=64, R=1``
# with ``B=16, R=4`` (same size).
fig, ax = plt.subplots(figsize=(6, 4))
for i, B in enumerate(buckets):
    ax.plot(size_mb[i], p1[i], "o-", label=f"B={B}")
    for j, R in enumerate(repetitions):
        if i == len(buckets) - 1 or j == len(repetitions) - 1:
            ax.annotate(f"R={R}", (size_mb[i, j], p1[i, j]), fontsize=7,
                        textcoords="offset points", xytext=(3, -8))
ax.set_xscale("log")
ax.set_xlabel("weights (MB, log scale) = 4 bytes x R x B x n_features")
ax.set_ylabel("P@1")
ax.set_title("The memory/accuracy trade-off of MACH")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# One-vs-rest on the same data needs ``K * n_features`` weights (3.2 MB
# for the 417 classes seen in training); with a million classes it needs a million columns, while the MACH
# model above stays the same size.
