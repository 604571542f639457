"""tinyllm/optim.py: AdamW against its closed form, the Numba update against the NumPy one,
parameter groups, clipping, the schedule.

Tolerances of the Numba update against the reference: rtol = atol = 1e-6 in float32 and 1e-12
in float64 (values are O(1)). The two differ only by rounding, fused multiply-adds and the
order of a few multiplications: the largest float32 difference measured was a quarter of that.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograd import kernels, nn
from autograd.testing import seeds, shapes, values
from tinyllm import optim
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.optim import (AdamW, ParamGroup, adamw_update_numba, adamw_update_ref,
                           clip_grad_norm, lr_at, param_groups)

TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}


def test_first_two_adamw_steps_match_the_closed_form():
    w = nn.Parameter(np.array([1.0, -2.0]))
    opt = AdamW([w], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    g1, g2 = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    expected = w.data.copy()
    m = v = np.zeros(2)
    for t, g in ((1, g1), (2, g2)):
        expected = expected * (1 - 0.1 * 0.5)  # decay first, from the pre-step weight
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g * g
        expected = expected - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        w.grad = g.copy()
        opt.step()
        np.testing.assert_allclose(w.data, expected, rtol=1e-12)
    # the first step of Adam moves every weight by ~lr, whatever the gradient's scale
    w0 = nn.Parameter(np.array([0.0, 0.0]))
    one = AdamW([w0], lr=0.1, weight_decay=0.0)
    w0.grad = np.array([1e-3, 1e3])
    one.step()
    np.testing.assert_allclose(w0.data, [-0.1, -0.1], rtol=1e-4)


def three_updates(p, grads, lr, wd, betas=(0.9, 0.95), eps=1e-8, update=adamw_update_ref):
    """Steps t = 1, 2, 3 of `update` from zero moments, as AdamW.step makes them; returns the
    (p, m, v) after each step, copied."""
    (b1, b2), m, v, states = betas, np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        update(p, g, m, v, lr, wd, b1, b2, eps, lr / (1 - b1**t), 1 / (1 - b2**t))
        states.append((p.copy(), m.copy(), v.copy()))
    return states


def assert_states_close(got, want, dtype, tolerance):
    """The (p, m, v) of each step agree to rtol = atol = tolerance (0: exactly), in dtype."""
    for state, expected in zip(got, want):
        for a, b in zip(state, expected):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


# the shapes AdamW meets and awkward ones: size 0 and 1, odd sizes the vector loop does not
# divide, up to 300 values so that the loop runs its vector body as well as its remainder
awkward_shapes = st.one_of(shapes(), st.integers(0, 300).map(lambda n: (n,)), st.just((3, 0)))


@settings(deadline=None)  # the first example of each dtype compiles the Numba kernel
@given(shape=awkward_shapes, dtype=st.sampled_from([np.float32, np.float64]), seed=seeds(),
       lr=st.floats(1e-4, 0.1), wd=st.sampled_from([0.0, 0.1, 0.5]))
def test_numba_update_equals_the_reference(shape, dtype, seed, lr, wd):
    rng = np.random.default_rng(seed)
    p = rng.uniform(-2, 2, shape).astype(dtype)
    grads = [rng.uniform(-2, 2, shape).astype(dtype) for _ in range(3)]
    want = three_updates(p.copy(), grads, lr, wd)
    got = three_updates(p.copy(), grads, lr, wd, update=adamw_update_numba)
    assert_states_close(got, want, dtype, TOLERANCE[dtype])


@pytest.mark.parametrize("view", [lambda a: a[:, ::2], lambda a: a.T, lambda a: a[::-1]])
def test_numba_update_takes_the_reference_for_strided_arrays(view):
    rng = np.random.default_rng(0)
    grads = [view(rng.uniform(-2, 2, (5, 6))) for _ in range(3)]
    want = three_updates(view(np.ones((5, 6))), grads, 0.1, 0.1)
    # p strided: ravel() would update a copy; the reference updates the view itself, exactly
    got = three_updates(view(np.ones((5, 6))), grads, 0.1, 0.1, update=adamw_update_numba)
    assert_states_close(got, want, np.float64, 0.0)


def test_numba_update_takes_the_reference_for_mixed_dtypes():
    p, g = np.ones(4, np.float32), np.full(4, 0.5)  # float32 weights, a float64 gradient
    want = three_updates(p.copy(), [g] * 3, 0.1, 0.1)
    got = three_updates(p.copy(), [g] * 3, 0.1, 0.1, update=adamw_update_numba)
    assert_states_close(got, want, np.float32, 0.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_adamw_takes_the_update_the_kernel_backend_names(backend, monkeypatch):
    calls = []
    monkeypatch.setattr(kernels, "_backend", backend)
    monkeypatch.setattr(optim, "_adamw_flat", lambda *args: calls.append("numba"))
    w = nn.Linear(3, 2, rng=np.random.default_rng(0))
    w.weight.grad = np.ones_like(w.weight.data)
    AdamW([w.weight], lr=0.1).step()
    assert calls == (["numba"] if backend == "numba" else [])  # numpy: the reference ran


def test_param_groups_decay_matrices_but_not_biases_norms_or_positions():
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
    decay, no_decay = param_groups(model, 0.1)
    assert decay.weight_decay == 0.1 and no_decay.weight_decay == 0.0
    assert set(decay.names) == {"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight",
                                "transformer.h.0.attn.c_proj.weight",
                                "transformer.h.0.mlp.c_fc.weight",
                                "transformer.h.0.mlp.c_proj.weight"}
    assert "transformer.wpe.weight" in no_decay.names and "transformer.ln_f.bias" in no_decay.names


def test_weight_decay_is_decoupled_and_per_group():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = AdamW([ParamGroup([a], 0.5), ParamGroup([b], 0.0)], lr=0.1)
    a.grad, b.grad = np.zeros(2), np.zeros(2)  # no gradient: only the decay can move a weight
    opt.step()
    np.testing.assert_allclose(a.data, 0.95)
    np.testing.assert_array_equal(b.data, 1.0)


def test_optimizer_state_round_trip_and_mismatch():
    w = nn.Parameter(np.ones(3))
    opt = AdamW([w], lr=0.1)
    w.grad = np.ones(3)
    opt.step()
    other = AdamW([nn.Parameter(np.ones(3))], lr=0.5)
    other.load_state_dict(opt.state_dict())
    assert other.t == 1 and other.lr == 0.1
    np.testing.assert_array_equal(other.m[0], opt.m[0])
    with pytest.raises(ValueError, match="different number"):
        AdamW([w, nn.Parameter(np.ones(1))], lr=0.1).load_state_dict(opt.state_dict())


@given(data=st.data(), max_norm=st.floats(0.01, 10.0))
def test_clipping_bounds_the_norm_and_returns_the_old_one(data, max_norm):
    params = [nn.Parameter(np.zeros(s)) for s in data.draw(st.lists(shapes(), min_size=1,
                                                                    max_size=3))]
    for p in params:
        p.grad = data.draw(values(p.shape, -3, 3))
    before = math.sqrt(sum((p.grad**2).sum() for p in params))
    directions = [p.grad / before for p in params]
    assert clip_grad_norm(params, max_norm) == pytest.approx(before)
    after = math.sqrt(sum((p.grad**2).sum() for p in params))
    assert after <= max_norm * (1 + 1e-9)
    # clipped: scale max_norm / (norm + 1e-6), PyTorch's guard, so just under max_norm (by a
    # relative 1e-6 / norm: 1.6e-5 at the smallest max_norm drawn)
    clipped = max_norm * before / (before + 1e-6) if before > max_norm else before
    assert after == pytest.approx(clipped, rel=1e-9)
    for p, d in zip(params, directions):  # one common factor: the direction is kept
        np.testing.assert_allclose(p.grad / after, d, atol=1e-9)


def test_schedule_endpoints():
    args = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000)
    assert lr_at(0, **args) == pytest.approx(1e-3 / 101)
    assert lr_at(99, **args) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, **args) == pytest.approx(1e-3)  # peak right after warmup
    assert lr_at(1050, **args) == pytest.approx((1e-3 + 1e-4) / 2)  # halfway down the cosine
    assert lr_at(2000, **args) == pytest.approx(1e-4) == lr_at(5000, **args)


@given(step=st.integers(0, 2999))
def test_schedule_rises_then_falls(step):
    args = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000)
    now, later = lr_at(step, **args), lr_at(step + 1, **args)
    assert 0 < now <= 1e-3
    assert (later > now) if step < 99 else (later <= now)
