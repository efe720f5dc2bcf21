"""Device selection: ``device='auto' | 'cpu' | 'cuda'``.

CuPy is optional. Nothing here imports it at module import time.
"""

import importlib.util


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
        Devices the caller has kernels for. ``"auto"`` picks the GPU only
        when the caller supports it and one is present.
    owner : str
        Named in error messages.

    Raises
    ------
    ValueError
        If ``device='cuda'`` is requested and CuPy or a GPU is missing, or
        the caller has no GPU path.
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if "cuda" in supported and cuda_available() else "cpu"
    if device == "cuda":
        if "cuda" not in supported:
            raise ValueError(
                f"device='cuda' is not available for {owner} yet: its CuPy kernels "
                "(skmach._gpu) are not wired into it. Use device='cpu' or device='auto'."
            )
        if not cuda_available():
            raise ValueError(
                "device='cuda' needs CuPy and an NVIDIA GPU (pip install skmach[gpu]); "
                "none was found. Use device='cpu' or device='auto'."
            )
        return "cuda"
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
