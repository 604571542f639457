"""Modules: layers that own parameters, and the bookkeeping to find, save and load them.

A `Module` finds its parameters by looking at its own attributes: a `Parameter` is a leaf,
another `Module` is searched in turn, its name joined with a dot — so a model's state_dict
keys read like attribute paths (`h.0.attn.weight`), as in PyTorch. A parameter shared by two
modules (tied weights) is one parameter, listed once by parameters() and under each of its
names by state_dict(), as in PyTorch.

Initialisation takes an explicit `np.random.Generator` (`rng`), so a seeded run is reproducible;
without one, fresh entropy is drawn. Layers default to float32; pass dtype=np.float64 to
gradient-check them.

The last section adapts a trained model cheaply (LoRA): freeze its weights, add a small
trainable low-rank update to chosen Linears, train and save only that.

Shapes: B batch, T time, C channels (in_features / out_features for Linear), V vocabulary,
r the rank of a LoRA update.
Left out: ParameterList/ModuleDict (a plain list of modules is refused, see Module.__setattr__),
buffers, hooks.
"""
import numpy as np

from . import functional as F
from .tensor import Tensor


class Parameter(Tensor):
    """A weight of a module: it requires a gradient unless frozen with requires_grad_(False)."""

    def __init__(self, data):
        super().__init__(np.asarray(data), requires_grad=True)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze (True) this weight in place, as PyTorch; returns it.

        A frozen weight stays in state_dict(), but backward gives it no .grad, so an optimizer
        step leaves it alone; better still, hand the optimizer only the trainable ones:
        `[p for p in model.parameters() if p.requires_grad]`.
        """
        self.requires_grad = requires_grad
        self.grad = None
        return self


class Module:
    """Base class of every layer: parameters(), state_dict(), train()/eval(), zero_grad()."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __setattr__(self, name, value):
        _refuse_plain_list(self, name, value)
        object.__setattr__(self, name, value)

    def children(self):
        """(name, submodule) pairs, in the order they were assigned."""
        for name, value in vars(self).items():
            _refuse_plain_list(self, name, value)  # also a list filled after it was assigned
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module (named `prefix`) and all below, parents first."""
        found, stack = [], [(prefix, self)]
        while stack:
            path, module = stack.pop()
            found.append((path, module))
            stack.extend((_join(path, name), m) for name, m in reversed(module.children()))
        return found

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(dotted name, Parameter) pairs of this module and all below, frozen ones included.

        A parameter shared by two modules (tied weights) is listed once, under its first name;
        with remove_duplicate=False it is listed under every name, as state_dict() needs.
        """
        found, seen = [], set()
        for path, module in self.named_modules(prefix):
            for name, value in vars(module).items():
                if isinstance(value, Parameter) and not (remove_duplicate and id(value) in seen):
                    seen.add(id(value))
                    found.append((_join(path, name), value))
        return found

    def parameters(self):
        """Every Parameter, frozen ones included (filter on p.requires_grad for an optimizer)."""
        return [p for _, p in self.named_parameters()]

    def modules(self):
        """This module and every module below it."""
        return [m for _, m in self.named_modules()]

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


def _join(path, name):
    return f"{path}.{name}" if path else name


def _refuse_plain_list(owner, name, value):
    """A list or tuple of modules/parameters is invisible to named_parameters(): refuse it.

    Otherwise its weights would silently be missing from parameters(), state_dict() and the
    optimizer, and the model would train without them.
    """
    if isinstance(value, (list, tuple)) and any(isinstance(v, (Module, Parameter)) for v in value):
        raise TypeError(
            f"{type(owner).__name__}.{name} is a plain {type(value).__name__} holding modules or "
            f"parameters, which Module does not search (they would be missing from parameters() "
            f"and state_dict()): use nn.ModuleList([...]), or one attribute per parameter"
        )


class ModuleList(Module):
    """A list of modules whose parameters are named by position: `0.weight`, `1.weight`, ..."""

    def __init__(self, modules=()):
        # the one plain list allowed: children() below names its items
        object.__setattr__(self, "_items", list(modules))

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


# --- LoRA: a frozen Linear plus a trainable low-rank update ---


class LoRALinear(Module):
    """y = x W + b + (alpha / r) (x A) B: a frozen Linear plus a low-rank update (Hu et al. 2021).

    x (..., in) -> (..., out). W (in, out) and b (out,) are the given Linear's own Parameters,
    frozen and kept under their names, so state_dict() holds `weight` and `bias` (the base
    model's keys) beside `lora_A` (in, r) and `lora_B` (r, out). A and B follow our Linear's
    (in, out) orientation, so x A B reads left to right (PyTorch's peft stores the transposes).
    Fine-tuning trains r (in + out) numbers instead of in * out.

    Init: B = 0, so the layer starts as exactly the Linear and training starts from the
    pretrained model; A ~ U(-1/sqrt(in), 1/sqrt(in)), the Kaiming-uniform bound of PyTorch's
    Linear (peft's choice for A; the paper draws A from a Gaussian), so B's first gradient
    (x A)^T dout is not zero. alpha / r scales the update: retuning the rank then needs no
    new learning rate (the paper sets alpha to the first r tried and leaves it).
    Left out: dropout on the update path; adapting Embedding.
    >>> base = Linear(4, 3, rng=np.random.default_rng(0))
    >>> lora = LoRALinear(base, rank=2, alpha=4.0, rng=np.random.default_rng(1))
    >>> [(name, p.requires_grad) for name, p in lora.named_parameters()]
    [('weight', False), ('bias', False), ('lora_A', True), ('lora_B', True)]
    >>> lora.lora_A.shape, lora.lora_B.shape
    ((4, 2), (2, 3))
    """

    def __init__(self, base, rank=8, alpha=16.0, rng=None):
        in_features, out_features = base.weight.shape
        if not 1 <= rank <= min(in_features, out_features):  # a larger rank adds nothing
            raise ValueError(f"LoRA rank must be in [1, {min(base.weight.shape)}], got {rank}")
        self.weight = base.weight.requires_grad_(False)  # (in, out), shared with `base`
        self.bias = None if base.bias is None else base.bias.requires_grad_(False)  # (out,)
        self.scale = alpha / rank
        bound = 1.0 / np.sqrt(in_features)
        A = _rng(rng).uniform(-bound, bound, (in_features, rank))  # (in, r)
        self.lora_A = Parameter(A.astype(base.weight.dtype))
        self.lora_B = Parameter(np.zeros((rank, out_features), base.weight.dtype))  # (r, out)

    def forward(self, x):
        update = F.linear(F.linear(x, self.lora_A), self.lora_B)  # (..., r) -> (..., out)
        return F.linear(x, self.weight, self.bias) + update * self.scale  # (..., out)

    def merge(self):
        """A plain, trainable Linear computing the same function: W + (alpha/r) A B, and b.

        For inference the update then costs nothing: one matmul, as before fine-tuning.
        """
        W = self.weight.data + self.scale * (self.lora_A.data @ self.lora_B.data)  # (in, out)
        merged = Linear(*W.shape, bias=self.bias is not None, dtype=W.dtype)
        merged.weight.data[...] = W
        if self.bias is not None:
            merged.bias.data[...] = self.bias.data
        return merged


def apply_lora(module, targets=("c_attn", "c_proj"), rank=8, alpha=16.0, rng=None):
    """Freeze all of `module`, then wrap each targeted Linear in a LoRALinear, in place.

    A target is an attribute name (`c_proj`, matching every Linear so named, at any depth) or
    a dotted tail of one (`attn.c_proj`). Returns the adapted modules' dotted names; matching
    nothing is an error, so a misspelt target cannot silently train nothing.
    >>> class Block(Module):
    ...     def __init__(self):
    ...         self.c_attn, self.c_fc = Linear(4, 12), Linear(4, 16)
    >>> block = Block()
    >>> apply_lora(block, targets=("c_attn",), rank=2, rng=np.random.default_rng(0))
    ['c_attn']
    >>> [name for name, p in block.named_parameters() if p.requires_grad]
    ['c_attn.lora_A', 'c_attn.lora_B']
    """
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    rng = _rng(rng)
    for p in module.parameters():
        p.requires_grad_(False)
    adapted = _swap_submodules(
        module,
        lambda path, m: isinstance(m, Linear) and any(path == t or path.endswith("." + t)
                                                      for t in targets),
        lambda linear: LoRALinear(linear, rank, alpha, rng),
    )
    if not adapted:
        raise ValueError(f"apply_lora: no Linear matches the targets {list(targets)}")
    return adapted


def merge_lora(module):
    """Replace every LoRALinear in `module` by its merge(), in place; returns their names.

    The model then computes the same function at the base model's cost, and its state_dict()
    has the base model's keys only (an ordinary checkpoint).
    """
    return _swap_submodules(module, lambda path, m: isinstance(m, LoRALinear), LoRALinear.merge)


def _swap_submodules(module, chosen, replace):
    """Set each submodule attribute m whose dotted path is chosen(path, m) to replace(m);
    returns the paths. (ModuleList items are not attributes and are left alone.)"""
    swapped = []
    for path, parent in module.named_modules():
        for name, child in list(vars(parent).items()):
            if isinstance(child, Module) and chosen(_join(path, name), child):
                setattr(parent, name, replace(child))
                swapped.append(_join(path, name))
    return swapped


def lora_state_dict(module):
    """{name: copy} of the adapters only (`...c_attn.lora_A`, `...c_attn.lora_B`).

    What fine-tuning changed: a file of r (in + out) numbers per layer, used beside the base.
    """
    return {_join(path, name): getattr(m, name).data.copy()
            for path, m in module.named_modules() if isinstance(m, LoRALinear)
            for name in ("lora_A", "lora_B")}


def load_lora_state_dict(module, state):
    """Copy adapters saved by lora_state_dict into a module that apply_lora has adapted.

    The keys must be exactly its adapters' (a KeyError names any missing or unexpected), and
    each shape must match (ValueError): a rank or target mismatch fails loudly.
    """
    expected = lora_state_dict(module).keys()
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise KeyError(f"load_lora_state_dict: missing keys {missing}, "
                       f"unexpected keys {unexpected}")
    module.load_state_dict(state, strict=False)
