"""Software prefetch for the numba kernels that read the rows of a large point set in an order the CPU's own
prefetcher cannot follow (each column's candidate pairs: the rows jump by whole images). ``prefetch_row(Z, i)`` asks
for every cache line of row ``i`` of the C-contiguous ``Z (n, d)`` ahead of its use: LLVM's ``llvm.prefetch``, a
hint that never faults and changes no value (:data:`wganlab.ot.exact.arc_costs.AHEAD` says where it pays)."""

from __future__ import annotations

import numba as nb
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: bytes in a cache line (x86-64 and most ARM cores)
LINE = 64


@intrinsic
def _prefetch(typingctx, arr, i, k):
    """Prefetch (for reading, into every cache level) the line holding ``arr[i, k]``."""

    def codegen(context, builder, sig, args):
        aty = sig.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, [args[1], args[2]])
        byte_ptr = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr] + [ir.IntType(32)] * 3), "llvm.prefetch.p0i8")
        read, locality, data = (ir.Constant(ir.IntType(32), c) for c in (0, 3, 1))
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), read, locality, data])
        return context.get_dummy_value()

    return types.void(arr, types.intp, types.intp), codegen


@nb.njit(inline="always")
def prefetch_row(Z, i):
    """Prefetch every cache line of row ``i`` of ``Z (n, d)`` (C-contiguous)."""
    for k in range(0, Z.shape[1], max(1, LINE // Z.itemsize)):
        _prefetch(Z, i, k)
