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


def resolve_device(device):
    """Map the ``device`` parameter to ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        If ``device='cuda'`` is requested and CuPy or a GPU is missing.
    """
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda":
        if not cuda_available():
            raise ValueError(
                "device='cuda' needs CuPy and an NVIDIA GPU (pip install skmach[gpu]); "
                "none was found. Use device='cpu' or device='auto'."
            )
        return "cuda"
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
