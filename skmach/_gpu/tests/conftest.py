"""Fixtures of the GPU tests."""

import pytest


@pytest.fixture(params=[pytest.param("cupy", marks=pytest.mark.gpu), "standin"])
def cp(request):
    """The NumPy stand-in for CuPy (on every commit), or the real CuPy
    (``gpu``-marked; skipped without CuPy and a CUDA device)."""
    if request.param == "standin":
        from skmach._gpu._standin import installed

        with installed() as mod:
            yield mod
        return
    from skmach._device import cuda_available

    if not cuda_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy

    yield cupy
