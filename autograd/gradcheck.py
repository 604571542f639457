"""Gradient checking: compare backward() with central finite differences.

For a function f of arrays, the derivative along one element is approximately

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

with error O(eps^2). That is slow (two evaluations per input element) but needs nothing but
the forward pass, so it is the independent witness every hand-written backward is tested
against. It must run in float64: in float32 the rounding error of f (~1e-7 |f|) divided by
2 eps swamps the answer.

To check a function with many outputs at once we differentiate L = sum(f(x) * w) for a fixed
random w. A plain sum would be blind to some errors: the rows of a softmax always sum to 1, so
sum(softmax(x)) has zero gradient whatever the backward does.

A check can also pass by proving nothing, and those cases are errors here rather than passes:
a float32 layer's parameters (copying them to float64 would perturb copies the layer never
reads: both gradients zero, any backward passes), and an input the output does not depend on.
"""
import numpy as np

from .tensor import Tensor, _topological_order, no_grad


class GradcheckError(AssertionError):
    """backward() and finite differences disagree; the message lists every wrong input."""


class GradcheckInputError(ValueError):
    """The check would prove nothing for some input (not float64, or the output ignores it).

    A usage error, so a ValueError: it says the question was ill-posed, not that the gradients
    are wrong. Its message names every such input.
    """


def gradcheck(fn, inputs, module=None, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check fn's gradients w.r.t. every input that needs one. Returns True or raises.

    fn takes the `inputs` (as Tensors, in order) and returns a Tensor. Plain floating arrays
    are checked as float64 copies (fn receives the copies); integer arrays (targets, ids) and
    Tensors without requires_grad are constants. A Tensor that requires grad is used in place
    and must be float64. `module`: a Module whose parameters fn reads; each one that requires
    grad is checked in place too, and messages call it by its named_parameters() name.
    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    Raises GradcheckError listing every wrong input (worst index, both values) or
    GradcheckInputError (float32 tensors requiring grad, inputs the output ignores).
    >>> gradcheck(lambda x: x.tanh(), [np.linspace(-2, 2, 6).reshape(2, 3)])
    True
    >>> from autograd.nn import Linear
    >>> layer = Linear(4, 2, rng=np.random.default_rng(0), dtype=np.float64)
    >>> gradcheck(layer, [np.ones((3, 4))], module=layer)   # x, weight and bias
    True
    >>> gradcheck(Linear(4, 2), [np.ones((3, 4))])   # float32 weights: checking them is a bug
    Traceback (most recent call last):
    ...
    autograd.gradcheck.GradcheckInputError: gradcheck needs ... in float64 ...
    """
    args = [_as_input(x) for x in inputs]
    checked = _checked_tensors(args, module)  # [(label, tensor)]
    _require_float64(checked)
    out = fn(*args)
    w = np.random.default_rng(seed).standard_normal(np.shape(out.data))
    (out * w).sum().backward()
    reached = {id(t): t for t in _topological_order(out)}
    _require_float64(_unchecked_leaves(reached, checked))

    def loss():  # the scalar we differentiate, evaluated without building a graph
        return float((fn(*args).data * w).sum())

    wrong, ignored = [], []
    for label, x in checked:
        numeric = _numeric_grad(loss, x.data, eps)
        if id(x) not in reached and not numeric.any():
            ignored.append(label)
        else:
            analytic = np.zeros_like(x.data) if x.grad is None else x.grad
            wrong += _mismatch(label, analytic, numeric, atol, rtol)
    _report(wrong, ignored, atol, rtol)
    return True


def _as_input(x):
    """A Tensor passes as it is; an array becomes a constant or (floating) a float64 copy."""
    if isinstance(x, Tensor):
        return x
    data = np.asarray(x)
    if np.issubdtype(data.dtype, np.floating):
        return Tensor(data.astype(np.float64), requires_grad=True)
    return Tensor(data)


def _checked_tensors(args, module):
    """[(label, tensor)] of everything to check: inputs, then the module's other parameters.

    Labels name the input by position and, when it is one of `module`'s, by parameter name.
    Stale gradients would spoil the comparison, so each .grad is cleared.
    """
    names = {} if module is None else {id(p): n for n, p in module.named_parameters()}
    checked, seen = [], set()
    for i, t in enumerate(args):
        if t.requires_grad and id(t) not in seen:
            name = f", parameter {names[id(t)]}," if id(t) in names else ""
            checked.append((f"input {i}{name} of shape {t.shape}", t))
            seen.add(id(t))
    params = [] if module is None else module.named_parameters()
    checked += [(f"parameter {n} of shape {p.shape}", p) for n, p in params
                if p.requires_grad and id(p) not in seen]
    for _, t in checked:
        t.grad = None
    return checked


def _unchecked_leaves(reached, checked):
    """[(label, tensor)] of leaves of fn's graph that need a gradient but are not checked:
    the parameters of a layer fn uses, when neither they nor module= were passed."""
    ids = {id(t) for _, t in checked}
    return [(f"a tensor of shape {t.shape} that fn uses (not an input; pass module=)", t)
            for i, t in reached.items()
            if t.requires_grad and t._backward is None and i not in ids]


def _require_float64(labelled):
    bad = [f"{label} is {t.dtype}" for label, t in labelled if t.dtype != np.float64]
    if bad:
        raise GradcheckInputError(
            "gradcheck needs every tensor that requires grad in float64 (float32 rounding "
            "swamps finite differences); build the layer with dtype=np.float64:\n  "
            + "\n  ".join(bad)
        )


def _numeric_grad(loss, x, eps):
    """Central differences of loss() w.r.t. every element of x (changed in place, restored)."""
    grad = np.zeros_like(x)
    with no_grad():
        for i in np.ndindex(x.shape):
            original = x[i]
            x[i] = original + eps
            plus = loss()
            x[i] = original - eps
            minus = loss()
            x[i] = original
            grad[i] = (plus - minus) / (2 * eps)
    return grad


def _mismatch(label, analytic, numeric, atol, rtol):
    """[] if every element passes, else one line naming the worst element and how many fail."""
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if not (excess.size and excess.max() > 0):
        return []
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    return [
        f"{label} wrong at index {tuple(int(i) for i in worst)}: backward gave "
        f"{analytic[worst]:.8g}, finite differences {numeric[worst]:.8g} "
        f"({int((excess > 0).sum())} of {excess.size} elements off)"
    ]


def _report(wrong, ignored, atol, rtol):
    if wrong:
        raise GradcheckError(f"backward disagrees with finite differences (atol={atol}, "
                             f"rtol={rtol}):\n  " + "\n  ".join(wrong))
    if ignored:
        raise GradcheckInputError(
            "the output does not depend on these inputs (backward never reached them and "
            "perturbing them changed nothing), so checking them proves nothing; pass them as "
            "constants or check a fn that uses them:\n  " + "\n  ".join(ignored)
        )
