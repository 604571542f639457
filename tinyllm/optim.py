"""Optimisation: AdamW, gradient clipping by global norm, and warmup + cosine learning rates.

AdamW (Loshchilov & Hutter, 2019) is Adam (Kingma & Ba, 2015) with the weight decay taken out
of the gradient: Adam divides each gradient by a running RMS, which would also shrink an L2
penalty's pull on exactly the weights that get large gradients. Decoupled, the decay is a plain
`w -= lr * wd * w` applied to every decayed weight alike.

Decay applies to weight matrices only: shrinking biases, norm gains or the position table
towards zero would only fight the layers they belong to (nanoGPT's and GPT-3's rule).
"""
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ParamGroup:
    params: list  # the Parameters updated together
    weight_decay: float = 0.0  # decoupled decay for this group
    names: list = field(default_factory=list)  # their names, for state dicts and messages


def param_groups(model, weight_decay):
    """Split a model's trainable parameters: matrices decay, vectors (biases, norms) and
    positions don't. Frozen parameters (requires_grad False, e.g. under LoRA) are left out.

    >>> from tinyllm.model import GPT, GPTConfig
    >>> model = GPT(GPTConfig(n_layer=4), np.random.default_rng(0))   # the cpu preset's shape
    >>> [len(g.params) for g in param_groups(model, 0.1)]   # wte + 4 per block; the rest
    [17, 35]
    """
    decay, no_decay = ParamGroup([], weight_decay), ParamGroup([], 0.0)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = decay if p.ndim >= 2 and not name.endswith("wpe.weight") else no_decay
        group.params.append(p)
        group.names.append(name)
    return [decay, no_decay]


class AdamW:
    """AdamW over parameter groups (or a plain list of parameters, decayed by weight_decay).

    Each step, per parameter p with gradient g (t counts steps from 1):
        p -= lr * wd * p                                         decoupled decay
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2         running moments
        p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)  bias-corrected step
    """

    def __init__(self, params_or_groups, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        items = list(params_or_groups)
        if items and not isinstance(items[0], ParamGroup):
            items = [ParamGroup(items, weight_decay)]
        self.groups, self.lr, self.betas, self.eps = items, lr, betas, eps
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params()]
        self.v = [np.zeros_like(p.data) for p in self.params()]

    def params(self):
        """Every parameter this optimizer updates, group by group."""
        return [p for g in self.groups for p in g.params]

    def _decays(self):
        return [g.weight_decay for g in self.groups for _ in g.params]

    def step(self):
        """Update every parameter that has a gradient, in place."""
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1**self.t)  # folds the first-moment bias correction in
        v_scale = 1.0 / (1 - b2**self.t)
        for p, m, v, wd in zip(self.params(), self.m, self.v, self._decays()):
            if p.grad is None:
                continue
            g = p.grad
            p.data *= 1.0 - self.lr * wd  # p -= lr * wd * p: decay, apart from the gradient
            m *= b1  # m = b1 m + (1 - b1) g: a running mean of the gradient (momentum)
            m += (1 - b1) * g
            v *= b2  # v = b2 v + (1 - b2) g^2: a running mean of its square (its scale)
            v += (1 - b2) * g * g
            # p -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t) (in step_size)
            # and v_hat = v / (1 - b2^t): both means start at 0, and dividing by the weight
            # the first t steps have had so far removes that bias towards 0.
            p.data -= step_size * m / (np.sqrt(v * v_scale) + self.eps)

    def zero_grad(self):
        for p in self.params():
            p.grad = None

    def state_dict(self):
        """Arrays and numbers only, so a checkpoint can store it without pickle."""
        state = {"t": np.array(self.t), "lr": np.array(self.lr)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m.{i}"], state[f"v.{i}"] = m.copy(), v.copy()
        return state

    def load_state_dict(self, state):
        if sum(k.startswith("m.") for k in state) != len(self.m):
            raise ValueError("optimizer state holds a different number of parameters")
        self.t, self.lr = int(state["t"]), float(state["lr"])
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            if state[f"m.{i}"].shape != m.shape:
                raise ValueError(f"optimizer state {i} has shape {state[f'm.{i}'].shape}, "
                                 f"the parameter {m.shape}")
            m[...], v[...] = state[f"m.{i}"], state[f"v.{i}"]


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm.

    Returns the norm before clipping (worth logging: spikes announce instability). Scaling all
    gradients by one factor keeps the update's direction, unlike clipping each separately.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total


def lr_at(step, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """The learning rate at `step`: linear warmup, cosine decay to min_lr, then flat.

    Warmup avoids large updates while Adam's moment estimates are still noise; the cosine
    anneals smoothly so the last steps fine-tune (nanoGPT's schedule, from GPT-3).
    >>> lr_at(0, 1e-3, 1e-4, 100, 2000), lr_at(2000, 1e-3, 1e-4, 100, 2000)
    (9.900990099009901e-06, 0.0001)
    """
    if step < warmup_iters:
        return learning_rate * (step + 1) / (warmup_iters + 1)
    if step >= lr_decay_iters:
        return min_lr
    progress = (step - warmup_iters) / max(lr_decay_iters - warmup_iters, 1)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)
