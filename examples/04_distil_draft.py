"""Distil a draft model for speculative decoding: train a small GPT to predict the target's
next-token distribution instead of the text's next character.

Speculative decoding keeps a drafted token only when the target would have chosen it, so what a
draft needs is agreement with the target, not a low loss on the text. Two models trained on the
same text disagree surprisingly often: a draft whose val loss equals the target's had only 0.57
of its tokens accepted (README, Generating text). Trained on the target's own distributions
(knowledge distillation, Hinton et al., 2015; for drafts, DistillSpec, Zhou et al., 2023) it
learns the target's choices, mistakes included.

1. Soft labels: the target's probabilities p after every position of the training text, from
   windows of block_size that overlap by half, so that every position but those of the first
   window is scored with at least block_size / 2 tokens of context. (N, V) float32: 260 MB for
   Tiny Shakespeare's million characters; a large BPE vocabulary would call for keeping only the
   top few probabilities, or for running the target on each batch instead.
2. Training: loss = -sum_v p(v) log q(v), averaged over positions, where q is the draft's
   distribution: the cross-entropy against the target's distribution, which is KL(p || q) plus
   the target's entropy (a constant), so minimising it pulls q onto p.
3. The draft is saved as a checkpoint that `tinyllm sample --draft` and benchmarks/generate.py
   take, and the greedy agreement of draft and target on validation windows is printed before
   and after.

    python examples/04_distil_draft.py --target out/target-char2/best.npz \\
        --init out/draft-long/best.npz --out out/draft-distilled/best.npz [--iters 2000]
"""
import os

# Before NumPy loads OpenBLAS: its idle workers then sleep instead of spinning on the cores the
# next Numba kernel needs (autograd/kernels/threads.py); tune_process() below does the rest.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import dataclasses

import numpy as np
from tqdm import tqdm

from autograd import Tensor, no_grad
from autograd import functional as F
from autograd.kernels import tune_process
from tinyllm.checkpoint import load_checkpoint, save_checkpoint
from tinyllm.config import GPTConfig, preset
from tinyllm.data.batches import split_train_val
from tinyllm.data.download import shakespeare_path
from tinyllm.model import GPT
from tinyllm.optim import AdamW, clip_grad_norm, lr_at, param_groups
from tinyllm.train import eval_windows


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the target model's checkpoint")
    parser.add_argument("--init", help="a draft checkpoint to start from (default: a fresh "
                        "shakespeare-char-cpu model with a 128-token window)")
    parser.add_argument("--out", default="out/draft-distilled/best.npz")
    parser.add_argument("--iters", type=int, default=2000, help="(default 2000)")
    parser.add_argument("--batch-size", type=int, default=24, help="(default 24)")
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (3e-4)")
    parser.add_argument("--min-lr", type=float, default=3e-5, help="(default 3e-5)")
    parser.add_argument("--data", help="the text (default: $TINYLLM_DATA or the download)")
    parser.add_argument("--seed", type=int, default=1337)
    return parser.parse_args()


def load_model(path):
    state, _, meta, tokenizer = load_checkpoint(path)
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(state)
    return model, tokenizer


def soft_labels(target, ids, batch_size=32):
    """(N, V) float32: the target's next-token distribution after each position of ids (N,)."""
    W = target.config.block_size
    if len(ids) <= W:
        raise ValueError(f"the text ({len(ids)} tokens) must be longer than block_size {W}")
    probs = np.empty((len(ids), target.config.vocab_size), dtype=np.float32)
    starts = list(range(0, len(ids) - W, W // 2)) + [len(ids) - W]
    target.eval()
    with no_grad():
        for i in tqdm(range(0, len(starts), batch_size), desc="soft labels", unit="batch"):
            chunk = starts[i:i + batch_size]
            logits = target(np.stack([ids[s:s + W] for s in chunk]))[0].data  # (b, W, V)
            p = np.exp(logits - logits.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)  # (b, W, V)
            for row, s in zip(p, chunk):
                keep = 0 if s == 0 else W // 2  # the first half was scored by the last window
                probs[s + keep:s + W] = row[keep:]
    return probs


def distil(draft, ids, probs, args, rng):
    """Train draft in place on the soft labels; ids (N,), probs (N, V)."""
    T = draft.config.block_size
    optimizer = AdamW(param_groups(draft, 0.1), lr=args.lr, betas=(0.9, 0.99))
    draft.train()
    bar = tqdm(range(args.iters), desc="distilling", unit="step")
    for step in bar:
        starts = rng.integers(0, len(ids) - T, args.batch_size)
        x = np.stack([ids[s:s + T] for s in starts])  # (B, T)
        p = np.stack([probs[s:s + T] for s in starts])  # (B, T, V) target after each token
        logits, _ = draft(x)  # (B, T, V)
        loss = -(F.log_softmax(logits) * Tensor(p)).sum() * (1.0 / x.size)
        loss.backward()
        clip_grad_norm(draft.parameters(), 1.0)
        optimizer.lr = lr_at(step, args.lr, args.min_lr, min(100, args.iters // 10), args.iters)
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    draft.eval()
    return optimizer


def agreement(draft, target, ids, batches=20, batch_size=16):
    """Fraction of positions of validation windows where both models' likeliest next token is
    the same (each seeing the same text: teacher forcing)."""
    T = min(draft.config.block_size, target.config.block_size)
    same = total = 0
    with no_grad():
        for x, _ in eval_windows(ids, batches, batch_size, T):
            a, b = draft(x)[0].data.argmax(-1), target(x)[0].data.argmax(-1)  # (b, T) each
            same, total = same + (a == b).sum(), total + a.size
    return same / total


def main():
    args = parse_args()
    tune_process()  # one thread count for BLAS and Numba, idle workers asleep (threads.py)
    target, tokenizer = load_model(args.target)
    if args.init:
        draft, draft_tokenizer = load_model(args.init)
        if draft_tokenizer.vocab_size != tokenizer.vocab_size:
            raise SystemExit("error: the draft's and the target's vocabularies differ")
    else:
        config = dataclasses.replace(preset("shakespeare-char-cpu")[0], block_size=128,
                                     vocab_size=tokenizer.vocab_size)
        draft = GPT(config, np.random.default_rng(args.seed))
    text = shakespeare_path(args.data).read_text(encoding="utf-8")
    train_ids, val_ids = split_train_val(np.array(tokenizer.encode(text)), 0.1)
    before = agreement(draft.eval(), target.eval(), val_ids)
    probs = soft_labels(target, train_ids)
    optimizer = distil(draft, train_ids, probs, args, np.random.default_rng(args.seed))
    after = agreement(draft, target, val_ids)
    meta = {"model_config": dataclasses.asdict(draft.config), "distilled_from": args.target,
            "init": args.init, "iters": args.iters}
    save_checkpoint(args.out, draft.state_dict(), optimizer.state_dict(), meta, tokenizer)
    print(f"greedy agreement with the target on validation text: {before:.3f} -> {after:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
