"""Device selection: ``device='auto' | 'cpu' | 'cuda'``.

CuPy is optional. Nothing here imports it at module import time.

``device="auto"`` resolves to the CPU: the CuPy kernels of
:mod:`skmach._gpu` are compiled in CI and their host code is tested on the
CPU with a NumPy stand-in for CuPy, but they have not yet passed a run on a
device (``benchmarks/gpu_check.sh``). :data:`AUTO_USES_GPU` turns on once one
has. ``device="cuda"`` on a machine without CuPy or a GPU raises a
``ValueError`` that says what is missing.
"""

import importlib.util

#: Whether ``device="auto"`` may pick the GPU. False until a device run of
#: ``benchmarks/gpu_check.sh`` has passed (results in benchmarks/results/).
AUTO_USES_GPU = False


def cuda_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed without a driver or a device
        return False


def resolve_device(device, supported=("cpu", "cuda"), owner="this estimator"):
    """Map the ``device`` parameter to ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
    supported : tuple of str
        Devices the caller has kernels for. ``"auto"`` is the CPU for now
        (:data:`AUTO_USES_GPU`); then, the GPU only when the caller supports
        it and one is present.
    owner : str
        Named in error messages.

    Raises
    ------
    ValueError
        If ``device='cuda'`` is requested and CuPy or a GPU is missing, or
        the caller has no GPU path.

    Examples
    --------
    >>> resolve_device("auto")
    'cpu'
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        use = AUTO_USES_GPU and "cuda" in supported and cuda_available()
        return "cuda" if use else "cpu"
    if device == "cuda":
        if "cuda" not in supported:
            raise ValueError(
                f"device='cuda' is not available for {owner} yet: its CuPy kernels "
                "(skmach._gpu) are not wired into it. Use device='cpu' or device='auto'."
            )
        if not cuda_available():
            why = ("CuPy is not installed" if importlib.util.find_spec("cupy") is None
                   else "CuPy found no usable CUDA device or driver")
            raise ValueError(
                f"device='cuda' needs CuPy and an NVIDIA GPU (pip install skmach[gpu]): {why}. "
                "Use device='cpu' or device='auto'."
            )
        return "cuda"
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
