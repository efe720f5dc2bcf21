"""Data set loaders and generators for extreme classification.

Readers for the Extreme Classification Repository text format and for raw
``text<TAB>labels`` files, a scalable synthetic long-tailed problem generator,
and the small built-in demo data set.
"""

from ._synthetic import load_demo, make_extreme_classification
from ._text import iter_tsv, labels_to_indicator, load_tsv
from ._xc import dump_xc, iter_xc, load_xc

__all__ = [
    "load_xc",
    "iter_xc",
    "dump_xc",
    "load_tsv",
    "iter_tsv",
    "labels_to_indicator",
    "make_extreme_classification",
    "load_demo",
]
