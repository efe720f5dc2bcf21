"""Small shared helpers: targets, top-k selection, stable math, devices."""

from ._topk import topk
from ._math import log_softmax, sigmoid, softmax

__all__ = ["topk", "softmax", "log_softmax", "sigmoid"]
