"""Compile every CUDA source of :mod:`skmach._gpu` with NVRTC, no GPU needed.

CuPy's ``RawModule`` asks the device for its architecture before it
compiles; the low-level NVRTC binding that CuPy ships
(``cupy_backends.cuda.libs.nvrtc``, the library from the
``nvidia-cuda-nvrtc-cu12`` wheel or the CUDA toolkit) compiles for a named
architecture without one. Compiling to a CUBIN (``--gpu-architecture=sm_XX``)
runs ``ptxas`` as well, so inline PTX is checked too.

The options are the ones CuPy passes: the module's own options, then CuPy's
``-ftz=true`` (appended after ours) and its include directory.

Used by ``skmach/_gpu/tests/test_compile.py`` (CI, ``sm_90``) and by
``benchmarks/gpu_check.sh`` (the device's own architecture).
"""

import os

import numpy as np

__all__ = ["kernel_sources", "compile_source", "compile_all", "nvrtc_available"]

#: What CuPy appends to the options of every compilation (cupy/cuda/compiler.py).
CUPY_APPENDED_OPTIONS = ("-ftz=true",)


def kernel_sources():
    """Every CUDA source of the package: ``[(name, source, options), ...]``.

    One entry per compiled variant: the scoring module for each per-thread
    list size the fused top-k may use, the DWTA module for float32/float64,
    the universal hash operation.

    Examples
    --------
    >>> names = [name for name, _, _ in kernel_sources()]
    >>> "scoring[TOPK=128]" in names and "dwta[float32]" in names
    True
    """
    from . import _hashing, _lsh, _scoring

    out = []
    k = 1
    while k <= _scoring.MAX_FUSED_K:
        out.append((f"scoring[TOPK={k}]", _scoring.cuda_source(k), _scoring.COMPILE_OPTIONS))
        k *= 2
    for dt in (np.float32, np.float64):
        out.append((f"dwta[{np.dtype(dt).name}]", _lsh.cuda_source(dt), _lsh.COMPILE_OPTIONS))
    out.append(("universal_hash", _hashing.cuda_source(), ()))
    return out


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except Exception as exc:  # ImportError, or the library failing to load
        raise ImportError(f"the NVRTC binding of CuPy is not usable: {exc}") from exc
    nvrtc.getVersion()  # loads libnvrtc: raises when it is missing
    return nvrtc


def nvrtc_available():
    """True when CuPy's NVRTC binding and the NVRTC library load (no GPU needed)."""
    try:
        _nvrtc()
    except Exception:
        return False
    return True


def _include_dirs():
    try:
        import cupy

        inc = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
        return [inc] if os.path.isdir(inc) else []
    except Exception:  # pragma: no cover
        return []


def compile_source(source, options=(), arch="sm_90", name="skmach.cu"):
    """Compile one CUDA source to a CUBIN for ``arch``; return its size in bytes.

    Parameters
    ----------
    source : str
    options : tuple of str
        The module's options; CuPy's appended options follow them.
    arch : str, default="sm_90"
        ``sm_XX`` (CUBIN, ptxas runs) or ``compute_XX`` (PTX only).
    name : str
        File name in compiler messages.

    Raises
    ------
    RuntimeError
        With the compiler log, when the source does not compile.
    """
    nvrtc = _nvrtc()
    opts = [f"--gpu-architecture={arch}", *options, *CUPY_APPENDED_OPTIONS]
    opts += [f"-I{d}" for d in _include_dirs()]
    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, opts)
        except nvrtc.NVRTCError as exc:
            log = nvrtc.getProgramLog(prog)
            raise RuntimeError(f"{name} does not compile for {arch} ({exc}):\n{log}") from None
        out = nvrtc.getCUBIN(prog) if arch.startswith("sm_") else nvrtc.getPTX(prog)
        return len(out)
    finally:
        nvrtc.destroyProgram(prog)


def ptx(source, options=(), arch="compute_90"):
    """PTX text of a source compiled with CuPy's options (to inspect instructions)."""
    nvrtc = _nvrtc()
    opts = [f"--gpu-architecture={arch}", *options, *CUPY_APPENDED_OPTIONS]
    prog = nvrtc.createProgram(source, "skmach.cu", [], [])
    try:
        nvrtc.compileProgram(prog, opts)
        out = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return out.decode() if isinstance(out, bytes) else out


def compile_all(arch="sm_90"):
    """Compile :func:`kernel_sources` for ``arch``: ``{name: "ok" or the error}``."""
    results = {}
    for name, src, opts in kernel_sources():
        try:
            results[name] = f"ok ({compile_source(src, opts, arch, name + '.cu')} bytes)"
        except Exception as exc:  # noqa: BLE001 - reported, the caller decides
            results[name] = f"FAILED: {exc}"
    return results


def main(argv=None):
    """``python -m skmach._gpu._compile [ARCH]``: exit 1 when a kernel fails."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    arch = argv[0] if argv else "sm_90"
    res = compile_all(arch)
    for name, r in res.items():
        print(f"{name}: {r}")
    bad = [n for n, r in res.items() if not r.startswith("ok")]
    print(f"compiled {len(res) - len(bad)}/{len(res)} kernel sources for {arch}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
