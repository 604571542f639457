"""Primitive differentiable ops: elementwise, reductions, movement, indexing, matmul.

Each op is one short function: it computes `out` from the inputs' arrays, then defines right
below it the `backward(dout)` closure that turns dL/dout into dL/dinput with the derivative
written out, and hands both to `Tensor.from_op`. Closures capture what they need (inputs,
the output), so there is no separate context object to save things in.

Conventions: `dout` is dL/dout with out's shape; `x.accumulate(g)` adds g into x.grad and undoes
any broadcasting. Python numbers are converted to the other operand's dtype, so `x * 2.0` on
float32 stays float32.
"""
import builtins

import numpy as np

from . import kernels
from .tensor import Tensor


def as_tensor(x, like=None):
    """x as a Tensor; a plain number takes `like`'s dtype (a constant, needing no gradient)."""
    if isinstance(x, Tensor):
        return x
    dtype = like.dtype if like is not None and np.isscalar(x) else None
    return Tensor(np.asarray(x, dtype=dtype))


def _pair(a, b):
    """Both operands of a binary op as Tensors, numbers adopting the tensor's dtype."""
    a = as_tensor(a, b if isinstance(b, Tensor) else None)
    return a, as_tensor(b, a)


# --- elementwise, two inputs ---


def add(a, b):
    a, b = _pair(a, b)

    def backward(dout):  # d(a + b)/da = d(a + b)/db = 1
        a.accumulate(dout)
        b.accumulate(dout)

    return Tensor.from_op(a.data + b.data, (a, b), backward)


def sub(a, b):
    a, b = _pair(a, b)

    def backward(dout):  # d(a - b)/da = 1, d(a - b)/db = -1
        a.accumulate(dout)
        b.accumulate(-dout)

    return Tensor.from_op(a.data - b.data, (a, b), backward)


def mul(a, b):
    a, b = _pair(a, b)

    def backward(dout):  # d(ab)/da = b, d(ab)/db = a
        a.accumulate(dout * b.data)
        b.accumulate(dout * a.data)

    return Tensor.from_op(a.data * b.data, (a, b), backward)


def div(a, b):
    a, b = _pair(a, b)
    out = a.data / b.data

    def backward(dout):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
        a.accumulate(dout / b.data)
        b.accumulate(-dout * out / b.data)

    return Tensor.from_op(out, (a, b), backward)


def pow(a, b):
    """a ** b; the exponent may be a number or a tensor."""
    a, b = _pair(a, b)
    out = a.data**b.data

    def backward(dout):
        # d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b ln a (asked for only when b needs a gradient,
        # since ln a is undefined for a < 0 while x ** 2 of a negative x is fine)
        a.accumulate(dout * b.data * a.data ** (b.data - 1))
        if b.requires_grad:
            b.accumulate(dout * out * np.log(a.data))

    return Tensor.from_op(out, (a, b), backward)


# --- elementwise, one input ---


def neg(x):
    def backward(dout):  # d(-x)/dx = -1
        x.accumulate(-dout)

    return Tensor.from_op(-x.data, (x,), backward)


def exp(x):
    out = np.exp(x.data)

    def backward(dout):  # d e^x/dx = e^x, which is the output itself
        x.accumulate(dout * out)

    return Tensor.from_op(out, (x,), backward)


def log(x):
    def backward(dout):  # d ln x/dx = 1/x
        x.accumulate(dout / x.data)

    return Tensor.from_op(np.log(x.data), (x,), backward)


def sqrt(x):
    out = np.sqrt(x.data)

    def backward(dout):  # d sqrt(x)/dx = 1 / (2 sqrt(x))
        x.accumulate(dout / (2 * out))

    return Tensor.from_op(out, (x,), backward)


def tanh(x):
    out = np.tanh(x.data)

    def backward(dout):  # d tanh(x)/dx = 1 - tanh(x)^2
        x.accumulate(dout * (1 - out * out))

    return Tensor.from_op(out, (x,), backward)


def sigmoid(x):
    """1 / (1 + e^-x), squashing any real into (0, 1); stable for any |x|.

    With e = e^-|x| (in (0, 1], so nothing overflows) it is 1/(1+e) for x >= 0 and e/(1+e)
    for x < 0: the same number, but the second keeps full relative precision where sigmoid is
    tiny (the naive 1/(1+e^-x) overflows at x = -710 and 0.5(1 + tanh(x/2)) rounds to 0).
    >>> sigmoid(Tensor(np.array([-800.0, 0.0, 800.0]))).data
    array([0. , 0.5, 1. ])
    """
    e = np.exp(-np.abs(x.data))
    out = np.where(x.data >= 0, 1 / (1 + e), e / (1 + e))

    # y = 1/(1+e^-x);  dx = dy * y * (1 - y), which equals dy * e / (1+e)^2 with e = e^-|x|:
    # the symmetric form, exact in the tails where 1 - y would round to 0
    def backward(dout):
        x.accumulate(dout * (e / ((1 + e) * (1 + e))))

    return Tensor.from_op(out, (x,), backward)


def relu(x):
    def backward(dout):  # d max(x, 0)/dx = 1 where x > 0, else 0 (we pick 0 at the kink)
        x.accumulate(dout * (x.data > 0))

    return Tensor.from_op(np.maximum(x.data, 0), (x,), backward)


# --- reductions ---


def _expand(dout, shape, axis, keepdims):
    """Put back the axes a reduction removed, so `dout` broadcasts against the input."""
    if axis is None or keepdims:
        return dout if keepdims else np.reshape(dout, (1,) * len(shape))
    return np.expand_dims(dout, axis)


def sum(x, axis=None, keepdims=False):
    def backward(dout):  # every summed element gets the gradient of the sum: d(sum)/dx_i = 1
        x.accumulate(np.broadcast_to(_expand(dout, x.shape, axis, keepdims), x.shape))

    return Tensor.from_op(x.data.sum(axis=axis, keepdims=keepdims), (x,), backward)


def mean(x, axis=None, keepdims=False):
    out = x.data.mean(axis=axis, keepdims=keepdims)
    count = x.data.size // builtins.max(out.size, 1)

    def backward(dout):  # d(mean)/dx_i = 1/n for the n elements averaged
        x.accumulate(np.broadcast_to(_expand(dout, x.shape, axis, keepdims) / count, x.shape))

    return Tensor.from_op(out, (x,), backward)


def max(x, axis=None, keepdims=False):
    out = x.data.max(axis=axis, keepdims=True)

    def backward(dout):
        # the gradient flows to the maximal element; ties share it equally (a valid subgradient)
        winners = x.data == out
        share = _expand(dout, x.shape, axis, keepdims) / winners.sum(axis=axis, keepdims=True)
        x.accumulate(winners * share)

    return Tensor.from_op(out if keepdims else _squeeze(out, axis), (x,), backward)


def _squeeze(out, axis):
    return out.reshape(()) if axis is None else np.squeeze(out, axis)


# --- movement: gradients are moved back, never changed ---


def reshape(x, shape):
    def backward(dout):  # reshape moves no value, so the gradient just takes x's shape again
        x.accumulate(dout.reshape(x.shape))

    return Tensor.from_op(x.data.reshape(shape), (x,), backward)


def transpose(x, axes=None):
    """Permute axes (NumPy's transpose; axes=None reverses them)."""
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(a % x.ndim for a in axes)

    def backward(dout):  # apply the inverse permutation: argsort(axes) undoes axes
        x.accumulate(dout.transpose(np.argsort(axes)))

    return Tensor.from_op(x.data.transpose(axes), (x,), backward)


def swapaxes(x, a, b):
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


def getitem(x, index):
    """x[index] for slices, ints and integer arrays (fancy indexing)."""
    index = index.data if isinstance(index, Tensor) else index
    index = np.asarray(index) if isinstance(index, list) else index
    rows = isinstance(index, np.ndarray) and np.issubdtype(index.dtype, np.integer)

    def backward(dout):
        # The gradient flows back to the picked elements. An integer array may pick the same
        # row twice (a token repeated in a batch); every pick adds its gradient. That is the
        # embedding gradient: first sum dout's rows per distinct id, then add each sum once.
        if rows:
            ids = index % x.shape[0]  # -1 and n-1 are one row: make them one id
            x.accumulate_at(*_sum_rows_by_id(ids, dout), unique=True)
        else:
            x.accumulate_at(index, dout, _is_basic(index))

    return Tensor.from_op(x.data[index], (x,), backward)


def _sum_rows_by_id(ids, dout):
    """(distinct ids (U,), dout's rows summed per id (U, ...)), by sorting. ids are >= 0.

    Sorting brings equal ids together so np.add.reduceat sums each run in one vectorised pass;
    np.add.at, which adds row by row, measured 4x slower at a (64, 256) batch.
    >>> _sum_rows_by_id(np.array([2, 0, 2]), np.array([[1.], [2.], [4.]]))
    (array([0, 2]), array([[2.],
           [5.]]))
    """
    flat = ids.ravel()  # (N,)
    rows = dout.reshape((flat.size,) + dout.shape[ids.ndim:])  # (N, ...)
    if flat.size == 0:
        return flat, rows
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # (U,) run starts
    return sorted_ids[starts], np.add.reduceat(rows[order], starts, axis=0)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


def concatenate(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def backward(dout):  # each input gets back its own slab of the output gradient
        for t, piece in zip(tensors, np.split(dout, bounds, axis=axis)):
            t.accumulate(piece)

    return Tensor.from_op(np.concatenate([t.data for t in tensors], axis), tensors, backward)


def stack(tensors, axis=0):
    """Join along a new axis: concatenate after giving each tensor that axis of length 1."""
    tensors = [as_tensor(t) for t in tensors]
    axis = axis % (tensors[0].ndim + 1)
    expanded = tuple(t.shape[:axis] + (1,) + t.shape[axis:] for t in tensors)
    return concatenate([reshape(t, s) for t, s in zip(tensors, expanded)], axis)


def split(x, sections, axis=0):
    """Split into `sections` equal parts (an int) or at the given indices, as np.split.

    Each part is a slice of x, so its gradient is getitem's: no backward of its own needed.
    """
    axis = axis % x.ndim
    n = x.shape[axis]
    if isinstance(sections, int):
        if n % sections:
            raise ValueError(f"axis of length {n} does not split into {sections} equal parts")
        sections = range(n // sections, n, n // sections)
    edges = [0, *sections, n]
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(lo, hi),)) for lo, hi in zip(edges[:-1], edges[1:])]


# --- selection ---


def where(condition, a, b):
    """Elementwise `a if condition else b`; condition is a plain boolean array."""
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    a, b = _pair(a, b)

    def backward(dout):  # the gradient goes to whichever input was picked
        a.accumulate(np.where(condition, dout, 0))
        b.accumulate(np.where(condition, 0, dout))

    return Tensor.from_op(np.where(condition, a.data, b.data), (a, b), backward)


def masked_fill(x, mask, value):
    """x with `value` wherever mask is True (e.g. -inf above the diagonal for causality)."""
    return where(mask, as_tensor(value, x), x)


# --- matmul ---


def matmul(a, b):
    """a @ b with NumPy's rules: (..., M, K) @ (..., K, N) -> (..., M, N); 1-D sides allowed."""
    a, b = _pair(a, b)
    if a.ndim > 2 and b.ndim == 2:
        return linear(a, b)
    out = kernels.matmul_forward(a.data, b.data)

    def backward(dout):
        # out = A B  =>  dA = dout B^T,  dB = A^T dout, summed over broadcast batch axes.
        # A 1-D operand is a (1, K) row or a (K, 1) column for the duration.
        A = a.data[None, :] if a.ndim == 1 else a.data  # (..., M, K)
        B = b.data[:, None] if b.ndim == 1 else b.data  # (..., K, N)
        d = dout[..., None] if b.ndim == 1 else dout  # N restored (first: dout may be 0-d)
        d = d[..., None, :] if a.ndim == 1 else d  # (..., M, N) with M restored
        if a.requires_grad:  # skip the work for a constant side (e.g. the input batch)
            da = kernels.matmul_forward(d, B.swapaxes(-1, -2))  # (..., M, K)
            a.accumulate(da[..., 0, :] if a.ndim == 1 else da)
        if b.requires_grad:
            db = kernels.matmul_forward(A.swapaxes(-1, -2), d)  # (..., K, N)
            b.accumulate(db[..., 0] if b.ndim == 1 else db)

    return Tensor.from_op(out, (a, b), backward)


def linear(x, weight, bias=None):
    """x @ weight + bias as one op. x (..., K), weight (K, N), bias (N,) or None -> (..., N).

    The shape of every Linear layer, computed as one (rows, K) @ (K, N) product over all leading
    positions: the weight gradient x^T dout is then one large matrix product too, where the
    batched rule would make one per batch element for unbroadcast to sum. The bias is added in
    place, saving an op and an array. (Note: weight is (in, out), where PyTorch's is (out, in).)
    """
    K, N = weight.shape
    x2 = x.data.reshape(-1, K)  # (rows, K)
    out = kernels.matmul_forward(x2, weight.data)  # (rows, N), a fresh array
    if bias is not None:
        out += bias.data

    def backward(dout):
        d2 = dout.reshape(-1, N)  # (rows, N)
        if x.requires_grad:
            x.accumulate(kernels.matmul_forward(d2, weight.data.T).reshape(x.shape))  # (..., K)
        if weight.requires_grad:
            weight.accumulate(kernels.matmul_forward(x2.T, d2))  # (K, N)
        if bias is not None:  # the bias was added to every row: its gradient sums dout's rows,
            # as a vector-matrix product ones (rows,) @ d2, which BLAS does 2-5x faster than
            # NumPy's d2.sum(axis=0) at the model's shapes
            bias.accumulate(np.ones(len(d2), d2.dtype) @ d2)  # (N,)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(out.reshape(x.shape[:-1] + (N,)), parents, backward)
