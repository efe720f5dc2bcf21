"""
=============================================
MACH as a count-min sketch of the class space
=============================================

MACH hashes the ``K`` classes with ``R`` independent hash functions into
``B`` buckets each. Laid out as ``R`` rows of ``B`` cells, this is a
count-min sketch: each class owns one cell per row, and each row is a small
``B``-way classifier that predicts the bucket of the label. A class's score
is read from its ``R`` cells: the average of their probabilities.

This example draws that picture for ``K = 12`` classes, ``B = 4`` buckets and
``R = 3`` repetitions from the real hash functions of a fitted
:class:`~skmach.MACHClassifier`, and shows the probabilities its repetitions
give to the buckets for one sample.
"""

# %%
# Fit a tiny MACH model
# ---------------------
# Twelve classes, four buckets, three repetitions: each bucket holds about
# ``K / B = 3`` classes, so every class collides with others in every row,
# but (with high probability) with *different* classes in different rows.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from skmach import MACHClassifier
from skmach.datasets import make_extreme_classification

K, B, R = 12, 4, 3
X, y = make_extreme_classification(
    n_samples=1200, n_features=120, n_classes=K, power=0.0, random_state=0
)
clf = MACHClassifier(n_buckets=B, n_repetitions=R, n_epochs=20, random_state=0)
clf.fit(X, y)
buckets = clf.hash_family_(np.arange(K))  # shape (R, K): bucket of each class
print(buckets)

# %%
# The sketch
# ----------
# Each row is a repetition, each column a bucket; a cell lists the classes
# hashed to it. The cells of class 5 are highlighted: MACH's score of class 5
# averages the probabilities of exactly these ``R`` cells. Classes that share
# *all* their cells with class 5 could not be told apart from it; with ``R``
# independent hashes that happens with probability about ``B ** -R``.
sample = np.flatnonzero(y == 5)[0]
P = clf.predict_bucket_proba(X[sample:sample + 1])[0]  # (R, B)
target = 5
cmap = plt.get_cmap("Blues")

fig, ax = plt.subplots(figsize=(7.5, 3.6))
for r in range(R):
    for b in range(B):
        members = np.flatnonzero(buckets[r] == b)
        hit = buckets[r, target] == b
        ax.add_patch(Rectangle((b, R - 1 - r), 0.94, 0.9, facecolor=cmap(0.15 + 0.8 * P[r, b]),
                               edgecolor="crimson" if hit else "grey",
                               linewidth=3 if hit else 1))
        ax.text(b + 0.47, R - 1 - r + 0.58, " ".join(map(str, members)), ha="center",
                va="center", fontsize=10, fontweight="bold" if hit else "normal",
                color="white" if P[r, b] > 0.5 else "black")
        ax.text(b + 0.47, R - 1 - r + 0.22, f"p={P[r, b]:.2f}", ha="center", va="center",
                fontsize=8, color="white" if P[r, b] > 0.5 else "black")
for r in range(R):
    ax.text(-0.1, R - 1 - r + 0.45, f"repetition {r}\n(hash $h_{r}$)", ha="right",
            va="center", fontsize=9)
ax.set_xlim(-1.4, B)
ax.set_ylim(-0.1, R)
ax.set_xticks(np.arange(B) + 0.47, [f"bucket {b}" for b in range(B)])
ax.set_yticks([])
for side in ("left", "right", "top"):
    ax.spines[side].set_visible(False)
score = P[np.arange(R), buckets[:, target]].mean()
ax.set_title(f"K={K} classes in R={R} rows of B={B} buckets; class {target}: "
             f"mean of its cells = {score:.2f}")
fig.tight_layout()

# %%
# From bucket probabilities to class scores
# -----------------------------------------
# The mean of a class's ``R`` cells over-estimates its probability, since
# every cell also holds the mass of the other classes hashed there (about
# ``1/B`` on average). MACH reports the unbiased estimate
# ``B / (B - 1) * (mean - 1 / B)``; the ranking is the same.
mean_scores = np.array([P[np.arange(R), buckets[:, c]].mean() for c in range(K)])
unbiased = B / (B - 1) * (mean_scores - 1 / B)
labels, scores = clf.predict_topk(X[sample:sample + 1], k=3)
print("true class:", y[sample])
print("top 3     :", labels[0], np.round(scores[0], 3))
print("by hand   :", np.argsort(-unbiased)[:3], np.round(np.sort(unbiased)[::-1][:3], 3))

fig, ax = plt.subplots(figsize=(7.5, 2.8))
ax.bar(np.arange(K), unbiased, color=["crimson" if c == target else "C0" for c in range(K)])
ax.axhline(0, color="black", linewidth=0.8)
ax.set_xticks(np.arange(K))
ax.set_xlabel("class")
ax.set_ylabel("unbiased score")
ax.set_title("Class scores recovered from the sketch for one sample")
fig.tight_layout()
plt.show()
