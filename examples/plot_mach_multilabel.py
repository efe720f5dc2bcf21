"""
==============================
Multi-label learning with MACH
==============================

With a binary indicator matrix as ``y``, :class:`~skmach.MACHClassifier`
learns multi-label problems: a sample's labels are hashed into each
repetition's buckets, each repetition learns which buckets hold *some* label
of the sample (one sigmoid per bucket by default), and a label's score
combines its ``R`` bucket probabilities (``aggregation="logmean"`` by
default for multi-label: the geometric mean, which punishes a label whose
bucket is improbable in any repetition).

We rank labels on a synthetic long-tailed problem and measure precision,
nDCG and propensity-scored precision at k, which rewards getting the rare
labels right. If the bibtex data set is available in ``../shared/data``, the
same is done on it.
"""

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skmach import MACHClassifier
from skmach.datasets import load_xc, make_extreme_classification
from skmach.metrics import ndcg_at_k, precision_at_k, propensity_scores, psp_at_k

X, Y = make_extreme_classification(
    n_samples=4000, n_features=1000, n_classes=300, multilabel=True,
    n_labels_per_sample=4, noise=0.3, random_state=0,
)
X_train, X_test, Y_train, Y_test = X[:3000], X[3000:], Y[:3000], Y[3000:]
print(f"{Y.shape[1]} labels, {Y.sum(axis=1).mean():.1f} labels per sample on average")

# %%
# Aggregation of the repetitions
# ------------------------------
# ``"mean"`` is the estimator of the MACH paper, ``"logmean"`` the geometric
# mean and ``"min"`` the count-min-sketch query (the smallest of the ``R``
# cells).
ks = [1, 3, 5]
propensities = propensity_scores(Y_train)
results = {}
for aggregation in ["mean", "logmean", "min"]:
    clf = MACHClassifier(n_buckets=32, n_repetitions=12, aggregation=aggregation,
                         n_jobs=2, random_state=0).fit(X_train, Y_train)
    labels, _ = clf.predict_topk(X_test, k=5)  # labels are column indices
    results[aggregation] = {
        "P": [precision_at_k(Y_test, labels, k=k) for k in ks],
        "nDCG": [ndcg_at_k(Y_test, labels, k=k) for k in ks],
        "PSP": [psp_at_k(Y_test, labels, k=k, propensities=propensities) for k in ks],
    }
    print(aggregation, {m: np.round(v, 3).tolist() for m, v in results[aggregation].items()})

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=False)
for ax, metric in zip(axes, ["P", "nDCG", "PSP"]):
    for i, (aggregation, res) in enumerate(results.items()):
        ax.bar(np.arange(len(ks)) + (i - 1) * 0.27, res[metric], 0.27, label=aggregation)
    ax.set_xticks(range(len(ks)), [f"{metric}@{k}" for k in ks])
axes[0].legend(fontsize=8, title="aggregation")
fig.suptitle("Multi-label MACH (B=32, R=12), 300 long-tailed labels")
fig.tight_layout()

# %%
# Real data: bibtex
# -----------------
# The benchmark data are not part of the package; this part runs only where
# ``../shared/data/bibtex`` (or ``$SKMACH_DATA/bibtex``) exists.


def find_data(name):
    here = Path(globals().get("__file__", "plot_mach_multilabel.py")).resolve().parent
    candidates = [os.environ.get("SKMACH_DATA"), here.parent.parent / "shared" / "data",
                  Path.cwd().parent / "shared" / "data", Path.cwd() / ".." / ".." / "shared"
                  / "data"]
    for c in candidates:
        if c and (Path(c) / name).is_dir():
            return Path(c) / name
    return None


bibtex = find_data("bibtex")
if bibtex is None:
    print("bibtex not found: skipping the real-data part")
else:
    from sklearn.preprocessing import normalize

    Xtr, Ytr = load_xc(bibtex / "bibtex_train.txt")
    Xte, Yte = load_xc(bibtex / "bibtex_test.txt", n_labels=Ytr.shape[1])
    Xtr, Xte = normalize(Xtr), normalize(Xte)
    clf = MACHClassifier(n_buckets=32, n_repetitions=16, learning_rate=0.1, n_epochs=5,
                         n_jobs=2, random_state=0).fit(Xtr, Ytr)
    labels, _ = clf.predict_topk(Xte, k=5)
    p = propensity_scores(Ytr)
    print("bibtex P@1,3,5  :", [round(precision_at_k(Yte, labels, k=k), 3) for k in ks])
    print("bibtex PSP@1,3,5:", [round(psp_at_k(Yte, labels, k=k, propensities=p), 3)
                                for k in ks])
plt.show()
