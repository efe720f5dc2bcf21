"""Neural networks trained sparsely through locality-sensitive hashing."""

from ._lsh_mlp import LSHSparseMLPClassifier

__all__ = ["LSHSparseMLPClassifier"]
