"""What every Numba kernel here shares: the compiler flags, a vectorisable exp, and row views.

Why a hand-written exp? Numba compiles through LLVM, and the llvmlite wheels on PyPI are built
without Intel's SVML vector maths library. So `math.exp` inside a Numba loop is a call to the C
library's scalar `exp`, one element at a time: ~1.7 ns each here, where NumPy's own float32
`np.exp` runs 16 lanes of AVX-512 at ~0.3 ns. An exp made only of +, *, floor and a bit
reinterpretation, by contrast, is plain arithmetic that LLVM vectorises inside our fused loops:

    exp(x) = 2^n * exp(r),   n = round(x / ln 2),   r = x - n ln 2,   |r| <= ln(2) / 2

exp(r) on that small interval is its Taylor series to r^12/12! (truncation error < 2e-16
relative), evaluated by Horner's rule; 2^n is built directly as the float whose exponent bits are
n + 1023. n ln 2 is subtracted in two parts (Cody & Waite, 1980): LN_2_HI has only 21
significant bits, so n * LN_2_HI is exact for any n we meet, and LN_2_LO carries the rest of
ln 2. Everything runs in float64, so one exp serves float32 and float64 kernels alike; it agrees
with np.exp to ~1e-15 relative.

What it leaves out on purpose: x is clamped to [-708, 709], so exp(-1e4) returns 3e-308 instead
of 0 and exp(1e4) returns 8e307 instead of inf; every caller here feeds it arguments <= 0
(x - max) or takes 1 / (1 + exp), where those stand-ins are harmless.

If Numba is not installed, `njit` becomes a no-op decorator and `prange` is `range`: the module
imports, the kernels still run (as slow Python), and `kernels/__init__.py` offers only "numpy".
"""
import numpy as np

try:
    from llvmlite import ir
    from numba import get_num_threads, njit, prange, set_num_threads, types
    from numba.extending import intrinsic

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only without numba installed
    AVAILABLE = False
    prange = range

    def njit(*args, **kwargs):
        """Stand-in for numba.njit: returns the Python function itself."""
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


# Every kernel is compiled with these LLVM fast-math flags. "reassoc" lets LLVM reorder sums
# (that is what allows it to vectorise a reduction like sum(x)); "contract" allows fused
# multiply-add. We leave out "nnan"/"ninf": the kernels must behave on extreme logits.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

LOG2_E = 1.4426950408889634
LN_2_HI = 0.6931467056274414  # 0x1.62e42p-1: ln 2 with its low 32 mantissa bits cleared
LN_2_LO = 4.7493250390316726e-07  # ln 2 - LN_2_HI

if AVAILABLE:

    @intrinsic
    def _bits_as_float(typingctx, bits):
        """Reinterpret an int64's 64 bits as a float64 (C's `*(double *)&bits`): one LLVM op."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

else:  # pragma: no cover

    def _bits_as_float(bits):
        return np.array(bits, dtype=np.int64).view(np.float64)[()]


# Not FASTMATH: "reassoc" would let LLVM fold the two-part n ln 2 back into one (it did: the
# error grew to 2e-14). Elementwise code needs no reordering to vectorise in the callers' loops.
@njit(cache=True, fastmath={"contract"})
def exp(x):
    """e^x for a scalar, as float64, in straight-line arithmetic LLVM can vectorise.

    >>> exp(1.0)  # -> 2.718281828459045 (to ~1e-15)
    """
    x = min(max(np.float64(x), -708.0), 709.0)
    n = np.floor(x * LOG2_E + 0.5)  # nearest integer to x / ln 2
    r = (x - n * LN_2_HI) - n * LN_2_LO  # |r| <= ln(2)/2 = 0.35
    # Horner's rule for 1 + r + r^2/2! + ... + r^12/12!
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2^n: a float64 is sign | 11 exponent bits (biased by 1023) | 52 mantissa bits
    return p * _bits_as_float((np.int64(n) + 1023) << 52)


@njit(cache=True, fastmath={"contract"})
def sigmoid(x):
    """1 / (1 + e^-x) for a scalar, as float64; exact at both tails despite exp's clamp."""
    return 1.0 / (1.0 + exp(-x))


def rows(x):
    """A C-contiguous 2-D view (or copy) of x with the last axis kept. (..., V) -> (N, V)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def set_threads(n):
    """Size Numba's thread pool (at most the pool it started with, NUMBA_NUM_THREADS)."""
    if AVAILABLE:
        from numba import config

        set_num_threads(max(1, min(n, config.NUMBA_NUM_THREADS)))


def threads():
    """Threads Numba's parallel loops use now (1 without Numba)."""
    return get_num_threads() if AVAILABLE else 1
