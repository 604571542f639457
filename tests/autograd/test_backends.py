"""The two kernel backends train the same model to the same losses.

A tiny GPT-like stack (token and position embeddings, layer norm, causal attention, RMS norm, a
GELU MLP, cross-entropy with some ignored targets) built from autograd.nn and autograd.functional
is trained for a few SGD steps from the same initial weights under "numpy" and under "numba";
the loss after every step must agree to 1e-5 relative. This is the end-to-end check that each
kernel's Numba version is a drop-in for its reference inside the graph, gradients included.
"""
import numpy as np
import pytest

from autograd import functional as F, kernels, nn

pytestmark = pytest.mark.skipif("numba" not in kernels.BACKENDS, reason="numba not installed")
V, T, C, H = 11, 9, 16, 2  # T and C deliberately not multiples of any tile


class TinyGPT(nn.Module):
    def __init__(self, rng):
        self.wte = nn.Embedding(V, C, rng=rng)
        self.wpe = nn.Embedding(T, C, rng=rng)
        self.ln_1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C, rng=rng)
        self.proj = nn.Linear(C, C, rng=rng)
        self.ln_2 = nn.RMSNorm(C)
        self.fc = nn.Linear(C, 4 * C, rng=rng)
        self.fc_out = nn.Linear(4 * C, C, rng=rng)
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False, rng=rng)

    def attention(self, x):
        B = x.shape[0]
        qkv = self.qkv(x).reshape(B, T, 3, H, C // H).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, hs)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal=True)  # (B, H, T, hs)
        return self.proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))  # (B, T, C)

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(np.arange(T))  # (B, T, C)
        x = x + self.attention(self.ln_1(x))
        x = x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def train_losses(backend, steps=4, lr=0.3):
    """Losses of `steps` SGD steps from a fixed initialisation and batch, under `backend`."""
    previous = kernels.backend()
    kernels.use(backend)
    try:
        rng = np.random.default_rng(0)
        model = TinyGPT(rng)
        ids = rng.integers(0, V, (3, T))
        targets = np.where(rng.random((3, T)) < 0.2, -100, rng.integers(0, V, (3, T)))
        losses = []
        for _ in range(steps):
            loss = model(ids, targets)
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= lr * p.grad
            losses.append(float(loss.data))
        return np.array(losses)
    finally:
        kernels.use(previous)


def test_backends_train_to_the_same_losses():
    reference, fast = train_losses("numpy"), train_losses("numba")
    assert reference[-1] < reference[0]  # it learns, so the comparison covers real updates
    np.testing.assert_allclose(fast, reference, rtol=1e-5)
