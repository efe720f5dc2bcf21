"""
=====================================================================
Which package ships this file? A text pipeline with 24,000 labels
=====================================================================

The debian-paths data set asks which Debian package ships a file path such
as ``usr/lib/python3/dist-packages/numpy/linalg/__init__.py``. There are
24,288 packages (labels) in the full set, and most paths have exactly one.

A :class:`~sklearn.pipeline.Pipeline` turns each path into hashed character
n-grams with a stateless :class:`~sklearn.feature_extraction.text.HashingVectorizer`
and feeds them to :class:`~skmach.MACHClassifier`. MACH's weights depend on
the number of buckets and repetitions, not on the number of packages, so the
model stays small where a one-vs-rest linear model would need one weight
vector per package.

The example trains on the first 60,000 training paths to stay short; the
benchmark ``python benchmarks/bench_debian.py --n-eval 50000`` trains on all
1,198,250 paths and compares MACH with napkinXC, Omikuji and PECOS
(results in ``benchmarks/results/debian_paths.md``). Without the data in
``../shared/data`` (or in ``$SKMACH_DATA``), synthetic paths stand in.
"""

# %%
import itertools
import os
import tempfile
import time
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.pipeline import make_pipeline

import skmach
from skmach import MACHClassifier
from skmach.datasets import iter_tsv, labels_to_indicator
from skmach.metrics import precision_at_k

HERE = Path(globals().get("__file__", "plot_debian_paths.py")).resolve().parent
CANDIDATES = [os.environ.get("SKMACH_DATA"), HERE.parent.parent / "shared" / "data",
              Path.cwd().parent / "shared" / "data"]
ROOT = next((Path(c) / "debian-paths" for c in CANDIDATES
             if c and (Path(c) / "debian-paths" / "train.tsv.xz").exists()), None)
N_TRAIN, N_TEST = 60_000, 10_000


def synthetic_paths(n, seed):
    """Paths like usr/share/<pkg>/<dir>/<file>, with long-tailed packages."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        p = f"pkg{min(int(rng.zipf(1.2)), 500)}"
        texts.append(f"usr/{rng.choice(['share', 'lib'])}/{p}/{rng.choice(['doc', 'bin'])}"
                     f"/f{rng.integers(30)}.{rng.choice(['py', 'so', 'txt'])}")
        labels.append([p])
    return texts, labels


def read(name, n):
    """The first ``n`` lines of a TSV file, streamed (never loaded whole)."""
    texts, labels = [], []
    for t, lab in itertools.islice(iter_tsv(ROOT / name, chunk_size=20_000), -(-n // 20_000)):
        texts += t
        labels += lab
    return texts[:n], labels[:n]


if ROOT is not None:
    train_texts, train_labels = read("train.tsv.xz", N_TRAIN)
    test_texts, test_labels = read("test.tsv.xz", N_TEST)
else:
    train_texts, train_labels = synthetic_paths(N_TRAIN // 2, 0)
    test_texts, test_labels = synthetic_paths(N_TEST // 2, 1)

# Multi-label targets as a sparse indicator matrix; test paths whose package
# never occurs in the training part simply have no positive column.
Y_train, packages = labels_to_indicator(train_labels)
Y_test, _ = labels_to_indicator(test_labels, classes=packages)
print(f"{len(train_texts):,} training paths, {len(packages):,} packages")
print("e.g.", train_texts[0], "->", train_labels[0])

# %%
# The pipeline
# ------------
# ``loss="softmax"`` is the MACH paper's loss (one bucket per label and
# repetition); it suits data where almost every sample has one label (it is
# also what ``loss="auto"`` picks here). The sizes are those chosen for the
# full data set (``benchmarks/select_debian_settings.py``). Prediction
# scores the labels in each repetition's best buckets first and proves the
# top-5 with a bound (``n_candidate_buckets="auto"``): exact, and sublinear
# in the number of labels.
pipe = make_pipeline(
    HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**16,
                      alternate_sign=False, dtype=np.float32),
    MACHClassifier(n_buckets=1024, n_repetitions=4, hidden_layer_size=60, n_epochs=4,
                   learning_rate=0.02, learning_rate_schedule="linear", batch_size=1024,
                   loss="softmax", random_state=0, n_jobs=2),
)
t0 = time.perf_counter()
pipe.fit(train_texts, Y_train)
print(f"fit: {time.perf_counter() - t0:.1f} s")

# %%
# Top-5 packages of each test path
# --------------------------------
# A ``Pipeline`` has no ``predict_topk`` of its own: :func:`skmach.predict_topk`
# runs the texts through the vectorizer and asks MACH, the last step, for
# its top 5 (it also reaches through a ``GridSearchCV``'s best estimator).
t0 = time.perf_counter()
top, scores = skmach.predict_topk(pipe, test_texts, k=5)
print(f"predict: {time.perf_counter() - t0:.1f} s for {len(test_texts):,} paths")
p_at = {k: precision_at_k(Y_test, top, k=k) for k in (1, 3, 5)}
print(", ".join(f"P@{k} {v:.3f}" for k, v in p_at.items()))
for text, row in list(zip(test_texts, top))[:3]:
    print(f"{text}\n    -> {', '.join(packages[row[:3]])}")

# %%
# Memory: MACH against one-vs-rest
# --------------------------------
# The fitted pipeline is persisted with joblib like any scikit-learn model.
# A one-vs-rest linear model on the same features would keep one float64
# weight per feature and package.
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "debian_paths_pipeline.joblib"
    joblib.dump(pipe, path)
    mach_mb = path.stat().st_size / 2**20
ovr_mb = 2**16 * len(packages) * 8 / 2**20
print(f"MACH pipeline on disk: {mach_mb:.0f} MB; one-vs-rest weights: {ovr_mb:,.0f} MB")

fig, ax = plt.subplots(1, 2, figsize=(8, 3))
ax[0].bar(["MACH", "one-vs-rest"], [mach_mb, ovr_mb], color=["C0", "C7"])
ax[0].set(ylabel="model size (MB)", yscale="log")
ax[1].bar([f"P@{k}" for k in p_at], list(p_at.values()))
ax[1].set(ylim=(0, 1), ylabel="precision on test paths")
fig.tight_layout()
plt.show()
