"""skmach: hashing-based extreme classification for scikit-learn.

Estimators
----------
MACHClassifier
    Merged-Average Classifiers via Hashing (Medini et al., NeurIPS 2019).
LSHSparseMLPClassifier
    A neural network trained with locality-sensitive hashing (Spring &
    Shrivastava, KDD 2017; SLIDE, MLSys 2020).
"""

from ._version import __version__
from .mach import MACHClassifier
from .neural_network import LSHSparseMLPClassifier

__all__ = ["MACHClassifier", "LSHSparseMLPClassifier", "__version__"]
