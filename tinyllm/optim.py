"""Optimisation: AdamW, gradient clipping by global norm, and warmup + cosine learning rates.

AdamW (Loshchilov & Hutter, 2019) is Adam (Kingma & Ba, 2015) with the weight decay taken out
of the gradient: Adam divides each gradient by a running RMS, which would also shrink an L2
penalty's pull on exactly the weights that get large gradients. Decoupled, the decay is a plain
`w -= lr * wd * w` applied to every decayed weight alike.

Decay applies to weight matrices only: shrinking biases, norm gains or the position table
towards zero would only fight the layers they belong to (nanoGPT's and GPT-3's rule).

The update of one parameter comes in two versions with one signature, as the kernels do:
  1. `adamw_update_ref`: vectorised NumPy, the specification (fourteen array operations, most
     with a temporary: 2.5 ms per step for the 0.8M-parameter cpu preset on 2 cores).
  2. `adamw_update_numba`: one pass over the elements, decay, moments and step together
     (0.7 ms, near the memory's bandwidth: 28 bytes read or written per float32 weight).
     It falls back to the reference for strided or mixed-dtype arrays.
AdamW takes the one the kernel backend names (autograd.kernels.use, AUTOGRAD_KERNELS), as every
kernel does: `adamw_update`.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from autograd import kernels
from autograd.kernels.numba_support import FASTMATH, njit


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


# --- reference ---


def adamw_update_ref(p, g, m, v, lr, wd, b1, b2, eps, step_size, v_scale):
    """One AdamW step of one parameter, in place: p, m, v updated from the gradient g.

    p, g, m, v (...) of one shape. step_size = lr / (1 - b1^t) and v_scale = 1 / (1 - b2^t)
    carry the bias corrections of step t (the caller counts the steps). The first step moves
    every weight by lr, against its gradient, whatever the gradient's scale:
    >>> p, g, m, v = np.array([1.0, -1.0]), np.array([0.5, -2.0]), np.zeros(2), np.zeros(2)
    >>> adamw_update_ref(p, g, m, v, 0.1, 0.0, 0.9, 0.95, 1e-8, 0.1 / 0.1, 1 / 0.05)
    >>> p, m
    (array([ 0.9, -0.9]), array([ 0.05, -0.2 ]))
    """
    p *= 1.0 - lr * wd  # p -= lr * wd * p: decay, apart from the gradient
    m *= b1  # m = b1 m + (1 - b1) g: a running mean of the gradient (momentum)
    m += (1 - b1) * g
    v *= b2  # v = b2 v + (1 - b2) g^2: a running mean of its square (its scale)
    v += (1 - b2) * g * g
    # p -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t) (in step_size)
    # and v_hat = v / (1 - b2^t): both means start at 0, and dividing by the weight
    # the first t steps have had so far removes that bias towards 0.
    p -= step_size * m / (np.sqrt(v * v_scale) + eps)


# --- numba ---


# error_model="numpy": a float division by zero gives inf, as in NumPy, instead of Numba's
# default Python ZeroDivisionError, whose check per element keeps LLVM from vectorising the
# loop (measured 4x slower on a (128, 512) float32 parameter). Not parallel: on 2 cores a
# prange measured no faster even on a (768, 3072) parameter (the loop is memory-bound there)
# and 4 us slower per call on small ones, 52 calls a step.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _adamw_flat(p, g, m, v, lr, wd, b1, b2, eps, step_size, v_scale):
    """p, g, m, v (n,), one dtype; the scalars Python floats. Updates p, m, v in place."""
    # the scalars in the parameter's dtype, so float32 arithmetic stays float32 (twice the
    # vector lanes of float64)
    t = p.dtype.type
    decay, beta1, beta2 = t(1.0 - lr * wd), t(b1), t(b2)
    one_minus_b1, one_minus_b2 = t(1.0 - b1), t(1.0 - b2)
    step, scale, epsilon = t(step_size), t(v_scale), t(eps)
    # one pass: read p, g, m, v once and write p, m, v once, 7 sweeps over n values where the
    # reference's fourteen whole-array operations make 33, through temporaries
    for i in range(p.shape[0]):
        gi = g[i]
        mi = beta1 * m[i] + one_minus_b1 * gi  # first moment
        vi = beta2 * v[i] + one_minus_b2 * gi * gi  # second moment
        m[i] = mi
        v[i] = vi
        # decay from the pre-step weight, then the bias-corrected step, as in the reference
        p[i] = p[i] * decay - step * mi / (math.sqrt(vi * scale) + epsilon)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # the dtypes _adamw_flat compiles for


def adamw_update_numba(p, g, m, v, lr, wd, b1, b2, eps, step_size, v_scale):
    """Same contract as adamw_update_ref. p, g, m, v (...) -> p, m, v updated in place.

    Strided arrays (ravel would copy, and the copy's update would be lost) or mixed dtypes
    take the reference.
    """
    if p.dtype in _FLOATS and all(a.flags.c_contiguous and a.dtype == p.dtype
                                  for a in (p, g, m, v)):
        # (n,) views; float(): one compiled specialisation per dtype, whatever the caller's
        # number types. Spelled out, not unpacked from generators: 1 us less per call.
        _adamw_flat(p.ravel(), g.ravel(), m.ravel(), v.ravel(), float(lr), float(wd),
                    float(b1), float(b2), float(eps), float(step_size), float(v_scale))
    else:
        adamw_update_ref(p, g, m, v, lr, wd, b1, b2, eps, step_size, v_scale)


def adamw_update(*args):
    """adamw_update_numba under the numba kernel backend, else the reference; same arguments."""
    update = adamw_update_numba if kernels.backend() == "numba" else adamw_update_ref
    update(*args)


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
            if p.grad is not None:
                adamw_update(p.data, p.grad, m, v, self.lr, wd, b1, b2, self.eps, step_size,
                             v_scale)

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
