"""skmach: hashing-based extreme classification for scikit-learn.

Estimators
----------
MACHClassifier
    Merged-Average Classifiers via Hashing (Medini et al., NeurIPS 2019).
"""

from ._version import __version__
from .mach import MACHClassifier

__all__ = ["MACHClassifier", "__version__"]
