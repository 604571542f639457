"""Train a two-layer MLP on a spiral with nothing but autograd, then check its gradients.

The whole training loop is six lines: forward, loss, zero_grad, backward, and a plain SGD step
done under no_grad so the update itself is not recorded. Run:

    python examples/01_micrograd_style.py [--steps 500] [--seed 0]
"""
import argparse

import numpy as np

from autograd import Tensor, functional as F, gradcheck, nn, no_grad


def spiral(n_per_class, n_classes, rng):
    """Points on interleaved spiral arms: x (N, 2), labels (N,). Not linearly separable."""
    t = np.linspace(0.0, 1.0, n_per_class)  # (n,) radius
    xs, ys = [], []
    for c in range(n_classes):
        angle = 4.0 * t + 2 * np.pi * c / n_classes + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1))  # (n, 2)
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


class MLP(nn.Module):
    def __init__(self, n_in, n_hidden, n_out, rng, dtype=np.float32):
        self.fc1 = nn.Linear(n_in, n_hidden, rng=rng, dtype=dtype)
        self.fc2 = nn.Linear(n_hidden, n_out, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())  # (N, n_out) logits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="SGD steps (default 500)")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x, y = spiral(100, 3, rng)
    model = MLP(2, 64, 3, rng)

    for step in range(args.steps + 1):
        loss = F.cross_entropy(model(Tensor(x)), y)
        model.zero_grad()
        loss.backward()
        with no_grad():
            for p in model.parameters():
                p.data -= args.lr * p.grad
        if step % 50 == 0:
            accuracy = (model(Tensor(x)).data.argmax(axis=1) == y).mean()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")

    # The same model in float64, its gradients checked against finite differences.
    small = MLP(2, 4, 3, np.random.default_rng(1), dtype=np.float64)
    gradcheck(lambda *params: F.cross_entropy(small(Tensor(x[:8].astype(np.float64))), y[:8]),
              small.parameters())
    print("gradcheck: backward agrees with finite differences")


if __name__ == "__main__":
    main()
