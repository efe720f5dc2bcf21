"""A NumPy-backed stand-in for the parts of ``cupy``/``cupyx`` skmach uses.

It lets the host-side GPU code (launch geometry, chunking, key packing,
padding, tables, selection) run on the CPU in the normal test suite. Inside
:func:`installed`, ``import cupy`` gives this stand-in:

- ``cupy.ndarray`` is a NumPy subclass with ``.get()``; mixing it with a
  plain NumPy array in an operation raises ``TypeError``, as CuPy does;
- array functions are NumPy's, their results wrapped as stand-in arrays;
- ``RawModule(code=...).get_function(name)`` returns a launcher that checks
  the launch (grid and block limits, the number and C types of the arguments
  against the kernel's signature parsed from the source, C-contiguous
  arrays) and runs the kernel's NumPy reference (``NUMPY_REFERENCES`` of the
  kernel modules); ``ElementwiseKernel`` likewise;
- ``cupyx.scipy.sparse`` matrices are SciPy matrices with ``.get()``;
- ``cuda.runtime`` reports one device with 4 SMs (compute capability 9.0).

It is a test tool: it checks the host code, not the CUDA code (compiled by
:mod:`._compile`; run on a device by ``benchmarks/gpu_check.sh``).

Examples
--------
>>> import numpy as np
>>> from skmach._gpu._standin import installed
>>> with installed() as cp:
...     from skmach._gpu import to_device, to_host
...     x = to_device(np.arange(3.0), "cuda")
...     type(x) is cp.ndarray, to_host(x * 2).tolist()
(True, [0.0, 2.0, 4.0])
"""

import contextlib
import importlib.machinery
import re
import sys
import types

import numpy as np
import scipy.sparse as sp

__all__ = ["installed", "make_modules"]


class ndarray(np.ndarray):
    """A 'device' array: NumPy storage, CuPy's refusal of implicit transfers."""

    def get(self, stream=None):
        return np.array(self.view(np.ndarray), copy=True)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs + tuple(kwargs.get("out", ()) or ()):
            if type(x) is np.ndarray and x.ndim > 0:
                raise TypeError(f"stand-in cupy: {ufunc.__name__} mixes a device array with a "
                                "NumPy array (CuPy refuses implicit transfers)")
        args = tuple(x.view(np.ndarray) if isinstance(x, ndarray) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, ndarray) else o
                                  for o in kwargs["out"])
        res = getattr(ufunc, method)(*args, **kwargs)
        return _wrap(res)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __array__(self, dtype=None, copy=None):
        raise TypeError("stand-in cupy: implicit conversion to a NumPy array is not allowed "
                        "(use .get() or cupy.asnumpy)")


def _unwrap(x):
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x):
    if type(x) is np.ndarray:
        return x.view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------

_CTYPES = {
    "float": np.float32, "double": np.float64, "int": np.int32, "unsigned int": np.uint32,
    "long long": np.int64, "unsigned long long": np.uint64, "unsigned char": np.uint8,
}


def _references():
    from . import _hashing, _lsh, _scoring

    refs = {}
    for mod in (_scoring, _lsh, _hashing):
        refs.update(mod.NUMPY_REFERENCES)
    return refs


def _parse_signature(code, name):
    """C types of the kernel's parameters: ``[(ctype, is_pointer), ...]``."""
    typedefs = {alias: ctype for ctype, alias in
                re.findall(r"typedef\s+([\w ]+?)\s+(\w+)\s*;", code)}
    m = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(name) + r"\s*\(([^)]*)\)",
                  code)
    if m is None:
        raise AttributeError(f"stand-in cupy: no kernel {name!r} in the module source")
    params = []
    for p in m.group(1).split(","):
        p = " ".join(p.replace("const ", " ").split())
        ptr = "*" in p
        ctype = " ".join(p.replace("*", " ").split()[:-1])
        ctype = typedefs.get(ctype, ctype)
        if ctype not in _CTYPES:
            raise TypeError(f"stand-in cupy: unknown C type {ctype!r} in {name}")
        params.append((ctype, ptr))
    return params


def _dims(d, what, limits):
    d = tuple(d) if isinstance(d, (tuple, list)) else (d,)
    if not 1 <= len(d) <= 3 or not all(isinstance(v, (int, np.integer)) for v in d):
        raise TypeError(f"stand-in cupy: {what} must be 1 to 3 integers; got {d!r}")
    for v, lim in zip(d, limits):
        if not 1 <= v <= lim:
            raise ValueError(f"stand-in cupy: {what} {d} out of the CUDA limits {limits}")
    return tuple(int(v) for v in d)


class RawFunction:
    def __init__(self, module, name):
        self.module, self.name = module, name
        self.params = _parse_signature(module.code, name)
        refs = _references()
        if name not in refs:
            raise AttributeError(f"stand-in cupy: no NumPy reference for kernel {name!r}")
        self.reference = refs[name]
        self.defines = {k: int(v) for k, v in
                        re.findall(r"#define\s+(\w+)\s+(\d+)", module.code)}

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid = _dims(grid, "grid", (2**31 - 1, 65535, 65535))
        block = _dims(block, "block", (1024, 1024, 64))
        if int(np.prod(block)) > 1024:
            raise ValueError(f"stand-in cupy: block {block} has more than 1024 threads")
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"stand-in cupy: {self.name} takes {len(self.params)} arguments; "
                            f"got {len(args)}")
        for i, ((ctype, ptr), a) in enumerate(zip(self.params, args)):
            want = np.dtype(_CTYPES[ctype])
            if ptr:
                if not isinstance(a, ndarray):
                    raise TypeError(f"stand-in cupy: argument {i} of {self.name} must be a "
                                    f"device array ({ctype}*); got {type(a).__name__}")
                if a.dtype != want or not a.flags.c_contiguous:
                    raise TypeError(f"stand-in cupy: argument {i} of {self.name} must be a "
                                    f"C-contiguous {want} array; got {a.dtype}, "
                                    f"contiguous={a.flags.c_contiguous}")
            elif not isinstance(a, np.generic) or a.dtype != want:
                raise TypeError(f"stand-in cupy: argument {i} of {self.name} must be a NumPy "
                                f"{want} scalar ({ctype}); got {type(a).__name__}")
        self.module.launches.append((self.name, grid, block))
        self.reference(grid, block, _unwrap(args), self.defines)


class RawModule:
    """``cupy.RawModule`` whose functions run the NumPy references."""

    def __init__(self, code=None, options=(), **kwargs):
        if code is None:
            raise TypeError("stand-in cupy: RawModule needs code=")
        self.code, self.options = code, tuple(options)
        self.launches = []

    def get_function(self, name):
        return RawFunction(self, name)


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` running the NumPy reference of ``name``."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.in_types = [np.dtype(p.split()[0]) for p in in_params.split(",")]
        self.out_types = [np.dtype(p.split()[0]) for p in out_params.split(",")]
        self.reference = _references()[name]

    def __call__(self, *args):
        if len(args) != len(self.in_types):
            raise TypeError("stand-in cupy: wrong number of ElementwiseKernel arguments")
        for a, t in zip(args, self.in_types):
            if isinstance(a, ndarray) and a.dtype != t:
                raise TypeError(f"stand-in cupy: ElementwiseKernel wants {t}; got {a.dtype}")
            if type(a) is np.ndarray:
                raise TypeError("stand-in cupy: ElementwiseKernel given a NumPy array")
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        out = np.empty(shape, dtype=self.out_types[0])
        self.reference(*_unwrap(args), out)
        return out.view(ndarray)


# --------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------

def make_modules():
    """Fresh ``cupy``, ``cupyx``, ``cupyx.scipy`` and ``cupyx.scipy.sparse`` stand-ins."""
    cp = types.ModuleType("cupy")
    cp.__doc__ = "skmach NumPy-backed stand-in for CuPy (tests only)"
    cp.__version__ = "0.0.standin"
    cp.__skmach_standin__ = True
    cp.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    cp.ndarray = ndarray
    cp.RawModule = RawModule
    cp.ElementwiseKernel = ElementwiseKernel

    def asarray(a, dtype=None, order=None):
        if isinstance(a, ndarray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        if sp.issparse(a):
            raise TypeError("stand-in cupy: asarray of a SciPy sparse matrix")
        return np.array(a, dtype=dtype, order=order or "K", copy=True).view(ndarray)

    def asnumpy(a, stream=None):
        return a.get() if isinstance(a, ndarray) else np.asarray(a)

    def get_array_module(*args):
        return cp if any(isinstance(a, ndarray) for a in args) else np

    cp.asarray = asarray
    cp.array = asarray
    cp.asnumpy = asnumpy
    cp.get_array_module = get_array_module
    cp.ascontiguousarray = lambda a, dtype=None: asarray(
        np.ascontiguousarray(_unwrap(asarray(a, dtype))))

    def __getattr__(name):
        obj = getattr(np, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, constants

        def f(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if type(a) is np.ndarray and a.ndim > 0 and name not in _HOST_OK:
                    raise TypeError(f"stand-in cupy: cupy.{name} given a NumPy array")
            return _wrap(obj(*_unwrap(args), **_unwrap(kwargs)))

        f.__name__ = name
        if name in ("argsort", "sort"):  # CuPy sorts are stable (radix sort)
            return lambda a, axis=-1: f(a, axis=axis, kind="stable")
        return f

    cp.__getattr__ = __getattr__

    # random
    random = types.ModuleType("cupy.random")

    class RandomState:
        def __init__(self, seed=None):
            self._rs = np.random.RandomState(seed)

        def random_sample(self, size=None, dtype=np.float64):
            return np.asarray(self._rs.random_sample(size), dtype=dtype).view(ndarray)

        random = random_sample

    random.RandomState = RandomState
    cp.random = random

    # cuda
    cuda = types.ModuleType("cupy.cuda")
    runtime = types.ModuleType("cupy.cuda.runtime")
    props = {"name": b"skmach stand-in", "multiProcessorCount": 4, "major": 9, "minor": 0,
             "memoryClockRate": 1000, "memoryBusWidth": 64, "totalGlobalMem": 2**30}
    runtime.getDeviceCount = lambda: 1
    runtime.getDeviceProperties = lambda dev: dict(props)
    runtime.deviceGetAttribute = lambda attr, dev: 0
    runtime.is_hip = False
    cuda.runtime = runtime

    class Device:
        def __init__(self, device=0):
            self.id = int(device)
            self.compute_capability = "90"

        def synchronize(self):
            pass

    class _Stream:
        def synchronize(self):
            pass

    class Stream(_Stream):
        null = _Stream()

    cuda.Device = Device
    cuda.Stream = Stream
    cp.cuda = cuda

    # cupyx.scipy.sparse
    cupyx = types.ModuleType("cupyx")
    cscipy = types.ModuleType("cupyx.scipy")
    csp = types.ModuleType("cupyx.scipy.sparse")

    class _DeviceSparse:
        def get(self, stream=None):
            return self._scipy_cls(self._plain(), shape=self.shape, copy=True)

        def _plain(self):
            return (self.data.view(np.ndarray), self.indices.view(np.ndarray),
                    self.indptr.view(np.ndarray))

        def toarray(self, order=None, out=None):
            return self._scipy_cls.toarray(self, order, out).view(ndarray)

        def __matmul__(self, other):
            if type(other) is np.ndarray:
                raise TypeError("stand-in cupyx: sparse @ NumPy array")
            return _wrap(self._scipy_cls.__matmul__(self, _unwrap(other)))

    def _init(self, arg1, shape=None, dtype=None, copy=False):
        if isinstance(arg1, tuple) and len(arg1) == 3 and all(
                isinstance(x, ndarray) for x in arg1):
            arg1 = tuple(x.view(np.ndarray) for x in arg1)
            if arg1[0].dtype.kind not in "fc":
                raise ValueError(f"stand-in cupyx: unsupported data dtype {arg1[0].dtype} "
                                 "(cupyx sparse holds float32/64 and complex data only)")
            if arg1[1].dtype != np.int32 or arg1[2].dtype != np.int32:
                raise ValueError("stand-in cupyx: indices must be int32")
        elif sp.issparse(arg1) and not isinstance(arg1, _DeviceSparse):
            raise TypeError("stand-in cupyx: construct from device arrays (data, indices, "
                            "indptr), not from a SciPy matrix")
        self._scipy_cls.__init__(self, arg1, shape=shape, dtype=dtype, copy=copy)
        for attr in ("data", "indices", "indptr"):
            setattr(self, attr, getattr(self, attr).view(ndarray))

    class csr_matrix(_DeviceSparse, sp.csr_matrix):
        _scipy_cls = sp.csr_matrix
        __init__ = _init

    class csc_matrix(_DeviceSparse, sp.csc_matrix):
        _scipy_cls = sp.csc_matrix
        __init__ = _init

    csp.csr_matrix, csp.csc_matrix = csr_matrix, csc_matrix
    csp.issparse = lambda x: isinstance(x, _DeviceSparse)
    cscipy.sparse = csp
    cupyx.scipy = cscipy
    return {"cupy": cp, "cupy.random": random, "cupy.cuda": cuda, "cupy.cuda.runtime": runtime,
            "cupyx": cupyx, "cupyx.scipy": cscipy, "cupyx.scipy.sparse": csp}


# NumPy arrays that CuPy functions accept (they upload host data).
_HOST_OK = frozenset({"array", "asarray", "full", "zeros", "ones", "empty"})

_SAVED = object()


@contextlib.contextmanager
def installed():
    """Context manager: ``import cupy`` gives the stand-in inside; yields it.

    Whatever ``sys.modules`` held for ``cupy``/``cupyx`` (the real CuPy, or
    nothing) is restored on exit, and the compiled-module caches of
    :mod:`skmach._gpu` are keyed by the CuPy module, so the real CuPy never
    sees a stand-in kernel.
    """
    mods = make_modules()
    prefixes = ("cupy", "cupyx")
    saved = {k: v for k, v in sys.modules.items()
             if k in prefixes or k.startswith(("cupy.", "cupyx."))}
    for k in saved:
        del sys.modules[k]
    sys.modules.update(mods)
    try:
        yield mods["cupy"]
    finally:
        for k in mods:
            sys.modules.pop(k, None)
        sys.modules.update(saved)
