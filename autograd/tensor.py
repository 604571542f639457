"""The Tensor: a NumPy array that remembers how it was made, so gradients can flow back.

Reverse-mode automatic differentiation in one idea: every op that produces a tensor `out` also
leaves behind a small `backward(dout)` closure that, given dL/dout, adds dL/dinput into each
input's `.grad` (the chain rule, one op at a time). `Tensor.backward()` orders the graph so each
node runs after every node that uses it, then calls the closures in that order.

Following micrograd (Karpathy, 2020) but on arrays: `.data` is an ndarray whose dtype is kept
(float32 to train, float64 to check gradients), and broadcasting is undone in one place,
`unbroadcast`. The ops themselves live in `ops.py`; the methods here only call them.

Left out on purpose: in-place ops (they would invalidate saved inputs), a device abstraction,
higher-order gradients (backward closures work on arrays, not Tensors).
"""
import contextlib

import numpy as np

_grad_enabled = True


def no_grad(fn=None):
    """Build no graph while gradients are off (evaluation, sampling, optimizer updates).

    Three spellings, as torch.no_grad: a block, a decorator, a decorator with parentheses.
    >>> x = Tensor(np.ones(2), requires_grad=True)
    >>> with no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    >>> @no_grad
    ... def double(t):
    ...     return t * 2
    >>> double(x).requires_grad, no_grad()(double)(x).requires_grad
    (False, False)
    """
    return _grad_off() if fn is None else _grad_off()(fn)


@contextlib.contextmanager
def _grad_off():
    # a generator context manager is also a decorator that re-enters it on every call, so a
    # decorated function that calls itself restores the right previous state at each level
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    If x of shape (3, 1) was broadcast against (2, 3, 4), every x element was used 2*4 times,
    so its gradient is the sum over those copies: (2, 3, 4) -> (3, 1).
    """
    if grad.shape == shape:
        return grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))  # drop added leading axes
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


class Tensor:
    """An ndarray plus what reverse-mode autodiff needs: `.grad`, parents and a backward closure.

    >>> x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad   # d(sum x^2)/dx = 2x
    array([2., 4.])
    """

    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__, not NumPy's loop

    def __init__(self, data, requires_grad=False):
        self.data = data if isinstance(data, np.ndarray) else np.asarray(data)
        self.grad = None
        self._grad_is_own = False  # may .grad be added to in place (see accumulate)?
        self.requires_grad = requires_grad
        self._parents = ()  # the tensors this one was computed from (only those needing grad)
        self._backward = None  # closure: dL/dself -> accumulate into the parents' .grad

    @staticmethod
    def from_op(data, parents, backward):
        """The output of an op: `data` computed from `parents`, differentiated by `backward`.

        Every op ends with this. The graph is recorded only when gradients are on and some
        parent needs one; otherwise the result is a plain constant tensor.
        """
        out = Tensor(data)
        if _grad_enabled:
            parents = tuple(p for p in parents if p.requires_grad)
            if parents:
                out.requires_grad, out._parents, out._backward = True, parents, backward
        return out

    def accumulate(self, grad):
        """Add `grad` (dL/dself, possibly broadcast) into `.grad`; called by backward closures.

        Accumulating, never assigning, is what makes a tensor used twice get both gradients.
        """
        if not self.requires_grad:
            return
        grad = unbroadcast(grad, self.data.shape)
        if self.grad is None:
            # A leaf's gradient outlives the pass and optimizers scale it in place, so it gets
            # a private copy. An intermediate's is read once by its own backward: it may share
            # the array (with a sibling, or a read-only broadcast view), marked as not ours.
            leaf = self._backward is None
            self.grad = np.array(grad, dtype=self.data.dtype, copy=True if leaf else None)
            self._grad_is_own = leaf
        elif self._grad_is_own:
            self.grad += grad
        else:
            self.grad = self.grad + grad  # never write into an array someone else holds
            self._grad_is_own = True

    def accumulate_at(self, index, grad, unique):
        """Add `grad` into `.grad[index]`: the backward of indexing, with no full-size temporary.

        `unique`: the index picks each element at most once (slices, ints), so a plain `+=`
        is right; otherwise (integer arrays) np.add.at adds every repeat of an index.
        """
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad, self._grad_is_own = np.zeros_like(self.data), True
        elif not self._grad_is_own:
            self.grad, self._grad_is_own = self.grad.copy(), True
        if unique:
            self.grad[index] += grad
        else:
            np.add.at(self.grad, index, grad)

    def backward(self, grad=None):
        """Fill `.grad` of every leaf tensor this one depends on with dself/dleaf.

        `grad` defaults to 1 for a single-element tensor (a loss). Intermediate tensors drop
        their `.grad` once used, as PyTorch does, so memory holds only the leaves' gradients.
        """
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() needs a grad for a tensor of shape {self.shape}")
            grad = np.ones_like(self.data)
        self.accumulate(np.asarray(grad, dtype=self.data.dtype))
        for node in reversed(_topological_order(self)):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)
                node.grad = None

    # --- conveniences ---
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def __len__(self):
        return len(self.data)

    # --- operators: each calls the op in ops.py of the same name ---
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    # comparisons give plain boolean arrays: they have no gradient
    def __lt__(self, other): return self.data < _data(other)
    def __le__(self, other): return self.data <= _data(other)
    def __gt__(self, other): return self.data > _data(other)
    def __ge__(self, other): return self.data >= _data(other)
    def __eq__(self, other): return self.data == _data(other)
    def __ne__(self, other): return self.data != _data(other)
    __hash__ = object.__hash__  # defining __eq__ would otherwise make tensors unhashable

    # --- methods, NumPy-named ---
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, _shape_args(shape))
    def transpose(self, *axes): return ops.transpose(self, _shape_args(axes) or None)
    def swapaxes(self, a, b): return ops.swapaxes(self, a, b)
    def split(self, sections, axis=0): return ops.split(self, sections, axis)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)

    @property
    def T(self):
        return ops.transpose(self, None)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _shape_args(args):
    """Accept both x.reshape(2, 3) and x.reshape((2, 3)), as NumPy does."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _topological_order(root):
    """Every tensor `root` depends on, each listed after all of its parents.

    An explicit stack instead of recursion, so a chain of 20,000 ops cannot hit Python's
    recursion limit. A node is pushed twice: once to expand its parents, once (`done=True`)
    to be emitted after them.
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if id(p) not in seen)
    return order


from . import ops  # noqa: E402  (ops imports Tensor, so it must come after the class)
