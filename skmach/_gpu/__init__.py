"""CuPy twins of the numerical kernels (optional GPU support).

Importing this package never imports CuPy: every function imports it lazily,
so ``import skmach._gpu`` works everywhere, and the functions that need a GPU
raise a clear ``ImportError`` without CuPy.

Modules
-------
:mod:`._backend`
    ``get_xp``, ``to_device``, ``to_host``, ``array_namespace_of``.
:mod:`._hashing`
    ``universal_buckets_gpu``: label hashing of all repetitions at once.
:mod:`._scoring`
    ``class_scores_gpu``, ``topk_classes_gpu`` (bucket scoring fused with
    the top-k), ``topk_candidates_gpu``.
:mod:`._lsh`
    ``GPUHashFamily`` (SimHash / DWTA codes), ``GPULSHTables`` (build,
    update, query), ``select_active_gpu``.
:mod:`._estimators`
    ``MACHClassifier`` prediction on the device (``mach_bucket_proba``,
    ``mach_topk``).
:mod:`._lsh_mlp`
    ``LSHSparseMLPClassifier`` prediction on the device (``lsh_mlp_scores``
    and friends: dense layer products masked to the CPU's active sets).
:mod:`._validation`
    ``check_prediction_input``: CuPy / ``cupyx`` input validated on the
    device under ``array_api_dispatch=True``.

Training the MACH per-repetition model on the GPU needs no twin: the plan is
to make :mod:`skmach.mach._repetition_model` follow its input's array library
(``xp.empty`` in ``matmul_blocks``, a sparse test that knows cupyx, no ufunc
``where=``), so that one module serves both devices.
"""

from ._backend import array_namespace_of, get_xp, to_device, to_host
from ._hashing import universal_buckets_gpu
from ._lsh import GPUHashFamily, GPULSHTables, select_active_gpu
from ._scoring import (
    MAX_FUSED_K,
    class_scores_gpu,
    hash_arguments,
    topk_candidates_gpu,
    topk_classes_gpu,
)

__all__ = [
    "get_xp",
    "to_device",
    "to_host",
    "array_namespace_of",
    "universal_buckets_gpu",
    "class_scores_gpu",
    "topk_classes_gpu",
    "topk_candidates_gpu",
    "hash_arguments",
    "MAX_FUSED_K",
    "GPUHashFamily",
    "GPULSHTables",
    "select_active_gpu",
]
