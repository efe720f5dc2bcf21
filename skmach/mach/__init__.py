"""MACH: Merged-Average Classifiers via Hashing."""

from ._mach import MACHClassifier

__all__ = ["MACHClassifier"]
