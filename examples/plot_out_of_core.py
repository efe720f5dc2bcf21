"""
=======================================================
Out-of-core training: streaming file paths with MACH
=======================================================

When the training set does not fit in memory, :class:`~skmach.MACHClassifier`
learns from chunks with :meth:`~skmach.MACHClassifier.partial_fit`. Text is
featurised chunk by chunk with a :class:`~sklearn.feature_extraction.text.HashingVectorizer`
(stateless, so it needs no pass over the data), and
:func:`~skmach.datasets.iter_tsv` streams a ``text<TAB>labels`` file without
ever loading it whole.

MACH hashes *all* classes up front, so the label set is collected first by a
cheap pass over the label column only. Then each chunk is one Adam epoch on
that chunk; the loss curve shows the model improving chunk after chunk.

The data are the debian-paths set of ``../shared/data`` (which Debian package
ships a file path); without it, a small synthetic stream of paths stands in.
Only the first chunks are used here to keep the example short; the benchmark
``benchmarks/bench_debian.py`` runs the full set.
"""

# %%
import itertools
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from skmach import MACHClassifier
from skmach.datasets import iter_tsv
from skmach.metrics import make_topk_scorer

HERE = Path(globals().get("__file__", "plot_out_of_core.py")).resolve().parent
CANDIDATES = [os.environ.get("SKMACH_DATA"), HERE.parent.parent / "shared" / "data",
              Path.cwd().parent / "shared" / "data"]
DATA = next((Path(c) / "debian-paths" / "train.tsv.xz" for c in CANDIDATES
             if c and (Path(c) / "debian-paths" / "train.tsv.xz").exists()), Path("missing"))
CHUNK, N_CHUNKS = 8_000, 5


def synthetic_stream(chunk_size, n_chunks, seed=0):
    """Paths like usr/share/<pkg>/<file>: the package name is in the path."""
    rng = np.random.default_rng(seed)
    pkgs = [f"pkg{i}" for i in range(300)]
    for _ in range(n_chunks):
        texts, labels = [], []
        for _ in range(chunk_size):
            p = pkgs[min(int(rng.zipf(1.3)) - 1, len(pkgs) - 1)]
            texts.append(f"usr/share/{p}/{rng.choice(['doc', 'lib', 'bin'])}/f{rng.integers(50)}")
            labels.append([p])
        yield texts, labels


def stream():
    if DATA.exists():
        return itertools.islice(iter_tsv(DATA, chunk_size=CHUNK), N_CHUNKS)
    return synthetic_stream(CHUNK // 10, N_CHUNKS)


# %%
# First pass: the label set (the label column only)
# -------------------------------------------------
classes = np.unique([lab[0] for _, labels in stream() for lab in labels])
print(f"{len(classes)} packages in the first {N_CHUNKS} chunks")

# %%
# Second pass: one partial_fit per chunk
# --------------------------------------
# The last chunk is held out to measure precision; a path with several
# packages is trained on its first one here (multi-class).
vec = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**16,
                        alternate_sign=False)
clf = MACHClassifier(n_buckets=256, n_repetitions=6, hidden_layer_size=64,
                     learning_rate=0.005, random_state=0, n_jobs=2)
chunks = list(stream())
held_out = chunks.pop()
p_at_1 = []
score = make_topk_scorer("precision", k=1)
X_held, y_held = vec.transform(held_out[0]), np.array([lab[0] for lab in held_out[1]])
for texts, labels in chunks:
    y = np.array([lab[0] for lab in labels])
    clf.partial_fit(vec.transform(texts), y, classes=classes)
    p_at_1.append(score(clf, X_held, y_held))
    print(f"after {len(p_at_1)} chunk(s): loss {clf.loss_curve_[-1]:.3f}, "
          f"held-out P@1 {p_at_1[-1]:.3f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(8, 3))
ax[0].plot(np.arange(1, len(clf.loss_curve_) + 1), clf.loss_curve_, marker="o")
ax[0].set(xlabel="chunk", ylabel="training loss (mean over repetitions)")
ax[1].plot(np.arange(1, len(p_at_1) + 1), p_at_1, marker="o")
ax[1].set(xlabel="chunk", ylabel="held-out P@1")
fig.tight_layout()
plt.show()
