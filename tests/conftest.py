"""Test configuration shared by the test suite.

The markers (``gpu``, ``slow``, ``data``) are declared in ``pyproject.toml``.
Here: items marked ``gpu`` are skipped when CuPy or a CUDA device is missing
(``skmach._device.cuda_available()``), so ``pytest`` passes on CPU-only
machines and ``pytest -m gpu`` runs them where a GPU exists.

``pytest_collection_modifyitems`` is a session-wide hook: once this file is
loaded (any run that collects ``tests/``, e.g. plain ``pytest``) it applies to
every collected item, including ``skmach/*/tests``. Those GPU tests also skip
on their own (a ``cp`` fixture), for runs that do not load this file.
"""

import pytest


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    from skmach._device import cuda_available

    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device (skmach._device.cuda_available)")
    for item in gpu_items:
        item.add_marker(skip)
