"""
=========================
MACHClassifier quickstart
=========================

Fit :class:`~skmach.MACHClassifier` on the embedded demo data set (4,500
training samples, 2,000 sparse features, 500 long-tailed classes), rank the
classes of new samples with :meth:`~skmach.MACHClassifier.predict_topk`, and
compare precision at k, fit time and model size with a one-vs-rest logistic
regression.
"""

# %%
# Data and model
# --------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from skmach import MACHClassifier
from skmach.datasets import load_demo
from skmach.metrics import make_topk_scorer, precision_at_k

X_train, X_test, y_train, y_test = load_demo()
print(X_train.shape, X_test.shape, len(np.unique(y_train)), "classes in training")

mach = MACHClassifier(n_buckets=16, n_repetitions=12, n_jobs=2, random_state=0)
t0 = time.perf_counter()
mach.fit(X_train, y_train)
mach_fit_s = time.perf_counter() - t0
print(f"MACH fitted in {mach_fit_s:.2f}s, {mach.n_iter_.max()} epochs")

# %%
# Top-k predictions
# -----------------
# :meth:`~skmach.MACHClassifier.predict_topk` returns the ``k`` best labels
# of each sample and their scores, without building an
# ``n_samples x n_classes`` matrix.
labels, scores = mach.predict_topk(X_test[:3], k=5)
for true, lab, sc in zip(y_test[:3], labels, scores):
    print(f"true {true:3d} | top-5 {lab} | scores {np.round(sc, 3)}")

# %%
# The metrics of :mod:`skmach.metrics` take the ranked labels directly (as
# positions in the label space; here the labels *are* the class ids).
# A test label never seen in training can only be missed.
labels, _ = mach.predict_topk(X_test, k=5)
print("P@1 =", precision_at_k(y_test, labels, k=1, n_classes=500))

# %%
# Against one-vs-rest
# -------------------
# A one-vs-rest logistic regression trains one binary model per class: its
# cost and size grow with the number of classes ``K``; MACH's grow with
# ``R * B``.
ovr = OneVsRestClassifier(LogisticRegression(max_iter=200), n_jobs=2)
t0 = time.perf_counter()
ovr.fit(X_train, y_train)
ovr_fit_s = time.perf_counter() - t0


def n_bytes(model):
    if isinstance(model, MACHClassifier):
        return sum(c.nbytes for c in model.coefs_)
    return sum(e.coef_.nbytes + e.intercept_.nbytes for e in model.estimators_)


ks = [1, 3, 5]
results = {}
for name, model, fit_s in [("MACH (B=16, R=12)", mach, mach_fit_s),
                           ("one-vs-rest logistic", ovr, ovr_fit_s)]:
    p = [make_topk_scorer("precision", k=k)(model, X_test, y_test) for k in ks]
    results[name] = (p, fit_s, n_bytes(model) / 2**20)
    print(f"{name:22s} P@1,3,5 = {np.round(p, 3)}  fit {fit_s:5.2f}s  "
          f"{results[name][2]:.2f} MB")

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
width = 0.38
for i, (name, (p, fit_s, mb)) in enumerate(results.items()):
    axes[0].bar(np.arange(len(ks)) + (i - 0.5) * width, p, width, label=name)
    axes[1].bar(i, fit_s, color=f"C{i}")
    axes[2].bar(i, mb, color=f"C{i}")
axes[0].set_xticks(np.arange(len(ks)), [f"P@{k}" for k in ks])
axes[0].set_ylabel("precision")
axes[0].legend(fontsize=8)
axes[1].set_ylabel("fit time (s)")
axes[2].set_ylabel("weights (MB)")
for ax in axes[1:]:
    ax.set_xticks([0, 1], ["MACH", "OvR"])
fig.suptitle("Demo data: 500 long-tailed classes")
fig.tight_layout()

# %%
# Sublinear candidate scoring
# ---------------------------
# With ``n_candidate_buckets`` set, ``predict_topk`` first scores only the
# classes found in each repetition's most probable buckets, then proves the
# top-k with a bound (a class outside them cannot score higher than the
# repetitions' next-best buckets allow) and scores exactly the samples it
# cannot prove: the same top-k either way, and fewer classes scored. It is a
# prediction-time setting: no refit is needed. (``"auto"`` turns it on from
# 4,096 classes; these 500 are scored exactly by default.)
exact = mach.set_params(n_candidate_buckets=None).predict_topk(X_test, 5)[0]
for n_cand in [None, 4, 2, 1]:
    mach.set_params(n_candidate_buckets=n_cand)
    t0 = time.perf_counter()
    top = mach.predict_topk(X_test, 5)[0]
    print(f"n_candidate_buckets={n_cand!s:4s}  same top-5 as exact: "
          f"{np.array_equal(top, exact)}  {time.perf_counter() - t0:.3f}s")
mach.set_params(n_candidate_buckets="auto")
plt.show()
