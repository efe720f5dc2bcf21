"""skmach: hashing-based extreme classification for scikit-learn.

Estimators
----------
MACHClassifier
    Merged-Average Classifiers via Hashing (Medini et al., NeurIPS 2019).
LSHSparseMLPClassifier
    A neural network trained with locality-sensitive hashing (Spring &
    Shrivastava, KDD 2017; SLIDE, MLSys 2020).

Functions
---------
predict_topk
    The top-k labels of any fitted skmach estimator, ``Pipeline`` ending in
    one, or ``GridSearchCV`` / ``RandomizedSearchCV`` over one.
"""

from ._api import predict_topk
from ._version import __version__
from .mach import MACHClassifier
from .neural_network import LSHSparseMLPClassifier

__all__ = ["MACHClassifier", "LSHSparseMLPClassifier", "predict_topk", "__version__"]
