"""
=============================================
Model selection with a top-k scorer
=============================================

:class:`~skmach.MACHClassifier` is a regular scikit-learn estimator: it goes
into a :class:`~sklearn.pipeline.Pipeline` and is tuned with
:class:`~sklearn.model_selection.GridSearchCV`. Accuracy is not the right
criterion for extreme classification; the scorers of :mod:`skmach.metrics`
(here :data:`~skmach.metrics.precision_at_1_scorer`, or any
:func:`~skmach.metrics.make_topk_scorer`) rank the classes with
``predict_topk``, also through a pipeline, so no dense
``n_samples x n_classes`` matrix is ever built; :func:`skmach.predict_topk`
gives the top-k labels of the fitted search itself.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

import skmach
from skmach import MACHClassifier
from skmach.datasets import load_demo
from skmach.metrics import make_topk_scorer, precision_at_1_scorer

X_train, X_test, y_train, y_test = load_demo()

pipe = Pipeline([
    ("tfidf", TfidfTransformer()),
    ("mach", MACHClassifier(n_epochs=5, learning_rate=0.1, random_state=0)),
])
param_grid = {
    "mach__n_buckets": [8, 16, 32],
    "mach__n_repetitions": [4, 8, 16],
}
# Plain (not stratified) folds: long-tailed data have classes with a single
# sample, which stratification cannot spread over the folds.
search = GridSearchCV(
    pipe, param_grid, scoring={"P@1": precision_at_1_scorer,
                               "P@5": make_topk_scorer("precision", k=5)},
    refit="P@1", cv=KFold(3, shuffle=True, random_state=0), n_jobs=1,
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated P@1: {search.best_score_:.3f}")
print(f"test P@1: {precision_at_1_scorer(search.best_estimator_, X_test, y_test):.3f}")

# %%
# Top-k labels from the search
# ----------------------------
# :func:`skmach.predict_topk` reaches the MACH model inside the refitted
# search (``best_estimator_``) and its pipeline (``tfidf`` is applied first).
labels, scores = skmach.predict_topk(search, X_test[:3], k=5)
for row, srow in zip(labels, scores):
    print(" ".join(f"{lab}:{s:.2f}" for lab, s in zip(row, srow)))

# %%
# Cross-validated precision over the grid
# ---------------------------------------
res = search.cv_results_
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for R in param_grid["mach__n_repetitions"]:
    mask = np.asarray(res["param_mach__n_repetitions"]) == R
    Bs = np.asarray(res["param_mach__n_buckets"])[mask].astype(int)
    ax.errorbar(Bs, res["mean_test_P@1"][mask], yerr=res["std_test_P@1"][mask],
                marker="o", capsize=3, label=f"R={R}")
ax.set_xscale("log", base=2)
ax.set_xticks(param_grid["mach__n_buckets"], param_grid["mach__n_buckets"])
ax.set_xlabel("buckets B")
ax.set_ylabel("3-fold CV P@1")
ax.legend()
ax.set_title("GridSearchCV(scoring=precision_at_1_scorer)")
fig.tight_layout()
plt.show()
