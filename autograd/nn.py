"""Modules: layers that own parameters, and the bookkeeping to find, save and load them.

A `Module` finds its parameters by looking at its own attributes: a `Parameter` is a leaf,
another `Module` is searched in turn, its name joined with a dot — so a model's state_dict
keys read like attribute paths (`h.0.attn.weight`), as in PyTorch. A parameter shared by two
modules (tied weights) is one parameter, listed once by parameters() and under each of its
names by state_dict(), as in PyTorch.

Initialisation takes an explicit `np.random.Generator` (`rng`), so a seeded run is reproducible;
without one, fresh entropy is drawn. Layers default to float32; pass dtype=np.float64 to
gradient-check them.

Shapes: B batch, T time, C channels (in_features / out_features for Linear), V vocabulary.
"""
import numpy as np

from . import functional as F
from .tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a trainable weight: it always requires a gradient."""

    def __init__(self, data):
        super().__init__(np.asarray(data), requires_grad=True)


class Module:
    """Base class of every layer: parameters(), state_dict(), train()/eval(), zero_grad()."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def children(self):
        """(name, submodule) pairs, in the order they were assigned."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(dotted name, Parameter) pairs of this module and all below.

        A parameter shared by two modules (tied weights) is listed once, under its first name;
        with remove_duplicate=False it is listed under every name, as state_dict() needs.
        """
        found, seen, stack = [], set(), [(prefix, self)]
        while stack:
            path, module = stack.pop()
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and not (remove_duplicate and id(value) in seen):
                    seen.add(id(value))
                    found.append((path + name, value))
            stack.extend((path + name + ".", m) for name, m in reversed(module.children()))
        return found

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def modules(self):
        """This module and every module below it."""
        out, stack = [], [self]
        while stack:
            module = stack.pop()
            out.append(module)
            stack.extend(m for _, m in reversed(module.children()))
        return out

    def state_dict(self):
        """{name: copy of the parameter's array}, tied weights under each of their names."""
        return {name: p.data.copy() for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state` into the parameters (in place, so optimizers keep working).

        Always an error: a shape that differs. With strict, also missing or unexpected keys.
        """
        params = dict(self.named_parameters(remove_duplicate=False))
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name in params.keys() & state.keys():
            value = np.asarray(state[name])
            if value.shape != params[name].shape:
                raise ValueError(
                    f"load_state_dict: {name} has shape {value.shape} in the state dict "
                    f"but {params[name].shape} in the model"
                )
            np.copyto(params[name].data, value, casting="same_kind")

    def train(self, mode=True):
        """Training mode (dropout active) for this module and all below; returns self."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None


class ModuleList(Module):
    """A list of modules whose parameters are named by position: `0.weight`, `1.weight`, ..."""

    def __init__(self, modules=()):
        self._items = list(modules)

    def children(self):
        return [(str(i), m) for i, m in enumerate(self._items)]

    def append(self, module):
        self._items.append(module)

    def __getitem__(self, i):
        return self._items[i]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)


def _rng(rng):
    return np.random.default_rng() if rng is None else rng


class Linear(Module):
    """y = x @ weight + bias, with weight stored (in, out) so the formula reads left to right.

    x (..., in) -> (..., out). Init as PyTorch: U(-1/sqrt(in), 1/sqrt(in)), which keeps the
    output variance near the input's.
    """

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        bound = 1.0 / np.sqrt(in_features)
        uniform = _rng(rng).uniform
        self.weight = Parameter(uniform(-bound, bound, (in_features, out_features)).astype(dtype))
        self.bias = Parameter(uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)  # (..., out)


class Embedding(Module):
    """A lookup table: ids (B, T) -> rows of weight (V, C), giving (B, T, C). Init N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, rng=None, dtype=np.float32):
        shape = (num_embeddings, embedding_dim)
        self.weight = Parameter(_rng(rng).standard_normal(shape).astype(dtype))

    def forward(self, ids):
        return F.embedding(ids, self.weight)


class LayerNorm(Module):
    """Layer normalisation over the last axis, with learnable scale (ones) and shift (zeros)."""

    def __init__(self, dim, eps=1e-5, bias=True, dtype=np.float32):
        self.eps = eps
        self.weight = Parameter(np.ones(dim, dtype=dtype))
        self.bias = Parameter(np.zeros(dim, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(Module):
    """RMS normalisation over the last axis, with a learnable scale (ones)."""

    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        self.eps = eps
        self.weight = Parameter(np.ones(dim, dtype=dtype))

    def forward(self, x):
        return F.rms_norm(x, self.weight, self.eps)


class Dropout(Module):
    """Inverted dropout with probability p while training; the identity in eval mode."""

    def __init__(self, p=0.0, rng=None):
        self.p = p
        self.rng = _rng(rng)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.rng)
