"""Ranking metrics and scorers for extreme classification.

Precision at k, nDCG at k and propensity-scored precision at k, computed
without densifying the label matrix, plus scorers for scikit-learn model
selection.
"""

from ._ranking import ndcg_at_k, precision_at_k, propensity_scores, psp_at_k
from ._scorer import (
    make_topk_scorer,
    precision_at_1_scorer,
    precision_at_3_scorer,
    precision_at_5_scorer,
)

__all__ = [
    "precision_at_k",
    "ndcg_at_k",
    "psp_at_k",
    "propensity_scores",
    "make_topk_scorer",
    "precision_at_1_scorer",
    "precision_at_3_scorer",
    "precision_at_5_scorer",
]
