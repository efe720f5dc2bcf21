"""Software prefetch of a matrix row, for the kernels that gather rows.

The sparse training kernels read rows of a weight matrix in an order that
the hardware prefetcher cannot guess (the active neurons of a sample, the
input columns of a sparse row). Issuing the loads of the row needed a few
iterations later hides part of the memory latency; the results do not
change (a prefetch is a hint, it never faults and writes nothing).

Measured ad hoc on a 24,288 x 128 float32 matrix (1 thread, cache flushed
before each call): gathering the 243 active rows of each of 128 samples
took 1.21 ms without prefetch and 0.74 ms prefetching 8 rows ahead; in
the debian training loop, see ``benchmarks/results/lsh_mlp_notes.md``.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import SERIAL

#: rows ahead that the gathering kernels prefetch (measured: 6-12 best)
DISTANCE = 8
#: bytes per cache line
LINE_BYTES = 64


@intrinsic
def prefetch(typingctx, arr, i, j):
    """Hint the CPU to load the cache line of ``arr[i, j]`` (2-D array), for
    reading, into all cache levels. Compiles to LLVM's ``llvm.prefetch``."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2
            and isinstance(i, types.Integer) and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ii = context.cast(builder, args[1], sig.args[1], types.intp)
        jj = context.cast(builder, args[2], sig.args[2], types.intp)
        ptr = cgutils.get_item_pointer2(
            context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
            cgutils.unpack_tuple(builder, ary.strides), aryty.layout, [ii, jj])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read (0), keep in every cache level (3), data cache (1)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, i, j), codegen


@njit(inline="always", **SERIAL)
def prefetch_row(A, r):
    """Prefetch row ``r`` of the 2-D array ``A`` (every cache line of a
    contiguous row)."""
    for c in range(0, A.shape[1], max(1, LINE_BYTES // A.itemsize)):
        prefetch(A, r, c)
