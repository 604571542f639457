"""The training loop: steps, evaluation, checkpoints, exact resume.

One optimizer step: for each of grad_accum micro-batches, forward, loss / grad_accum, backward
(gradients add up across micro-batches); clip the global gradient norm; set the scheduled
learning rate; AdamW update. Every eval_interval steps the mean train and val loss over
eval_iters batches is measured (eval mode, no graph), logged to out_dir/log.jsonl, and the state
checkpointed: `ckpt.npz` always (to resume), `best.npz` when validation improves.

Resuming is exact: a checkpoint holds the parameters, AdamW's moments, the step, and the state of
both random generators (batch sampling, dropout), and evaluation draws its batches from a fresh
generator of its own, so an interrupted and resumed run computes the same losses as one that
ran straight through. Ctrl-C finishes the current step, saves, and exits.
"""
import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from autograd import no_grad
from tinyllm.checkpoint import load_checkpoint, save_checkpoint
from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.batches import get_batch, split_train_val
from tinyllm.data.download import shakespeare_path
from tinyllm.data.pipeline import load_tokenizer
from tinyllm.data.token_files import open_tokens
from tinyllm.model import GPT
from tinyllm.optim import AdamW, clip_grad_norm, lr_at, param_groups
from tinyllm.tokenizer import CharTokenizer


class TrainingDiverged(RuntimeError):
    """The loss or gradient became inf or nan; the last checkpoint on disk is untouched."""


@dataclass
class Run:
    """Everything that changes while training, so it can be checkpointed and restored whole."""

    model: GPT
    optimizer: AdamW
    tokenizer: object
    train_cfg: TrainConfig
    batch_rng: np.random.Generator  # draws the training windows
    model_rng: np.random.Generator  # initialised the model; draws the dropout masks
    step: int = 0
    best_val: float = math.inf
    losses: list = field(default_factory=list)  # training loss of every step run here


def load_data(train_cfg):
    """(tokenizer, train ids, val ids) from a prepared dataset (token files read through
    np.memmap, so they need not fit in memory), else from the text file, by character."""
    if train_cfg.dataset:
        d = train_cfg.dataset
        return load_tokenizer(d), open_tokens(d, "train"), open_tokens(d, "val")
    text = shakespeare_path(train_cfg.data or None).read_text(encoding="utf-8")
    tokenizer = CharTokenizer.from_text(text)
    ids = np.array(tokenizer.encode(text), dtype=np.uint16)  # (N,)
    return (tokenizer, *split_train_val(ids, train_cfg.val_fraction))


def new_run(model_cfg, train_cfg, tokenizer):
    model_rng = np.random.default_rng(train_cfg.seed)
    model = GPT(dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size), model_rng)
    optimizer = AdamW(param_groups(model, train_cfg.weight_decay), lr=train_cfg.learning_rate,
                      betas=(train_cfg.beta1, train_cfg.beta2))
    batch_rng = np.random.default_rng([train_cfg.seed, 1])  # independent of model_rng
    return Run(model, optimizer, tokenizer, train_cfg, batch_rng, model_rng)


def train_step(run, train_ids):
    """One optimizer step over grad_accum micro-batches; returns (mean loss, grad norm)."""
    cfg, model = run.train_cfg, run.model
    model.train()
    total = 0.0
    for _ in range(cfg.grad_accum):
        x, y = get_batch(train_ids, cfg.batch_size, model.config.block_size, run.batch_rng)
        _, loss = model(x, y)
        (loss * (1.0 / cfg.grad_accum)).backward()  # gradients add across micro-batches
        total += loss.item() / cfg.grad_accum
    norm = clip_grad_norm(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else 0.0
    if not (math.isfinite(total) and math.isfinite(norm)):
        _diverged(run, f"loss {total}, gradient norm {norm}")
    run.optimizer.lr = lr_at(run.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                             cfg.lr_decay_iters)
    run.optimizer.step()
    run.optimizer.zero_grad()
    run.step += 1
    return total, norm


def _diverged(run, what):
    raise TrainingDiverged(
        f"{what} at step {run.step}: training diverged. The last checkpoint in "
        f"{run.train_cfg.out_dir} is intact; try a lower --learning_rate."
    )


def eval_windows(ids, batches, batch_size, T, seed=0):
    """Yield the (x, y) windows of an evaluation: batches * batch_size of them, drawn by a
    generator seeded with `seed`, so every evaluation sees the same windows and training's
    generators are left alone; in chunks larger than a batch (same mean, fewer round trips)."""
    rng = np.random.default_rng(seed)
    n, chunk = batches * batch_size, max(batch_size, 8192 // T)
    for start in range(0, n, chunk):
        yield get_batch(ids, min(chunk, n - start), T, rng)  # (b, T) each


def evaluate(model, ids, batches, batch_size, seed=0):
    """Mean loss over the windows of eval_windows, in eval mode and without a graph."""
    model.eval()
    total = 0.0
    with no_grad():
        for x, y in eval_windows(ids, batches, batch_size, model.config.block_size, seed):
            total += model(x, y)[1].item() * len(x)
    return total / (batches * batch_size)


def checkpoint(run, path):
    meta = {"step": run.step, "best_val": run.best_val,
            "model_config": dataclasses.asdict(run.model.config),
            "train_config": dataclasses.asdict(run.train_cfg),
            "batch_rng": run.batch_rng.bit_generator.state,
            "model_rng": run.model_rng.bit_generator.state}
    save_checkpoint(path, run.model.state_dict(), run.optimizer.state_dict(), meta, run.tokenizer)


def restore(path, train_cfg=None):
    """A Run continued from a checkpoint; `train_cfg` (if given) replaces the saved one."""
    model_state, optim_state, meta, tokenizer = load_checkpoint(path)
    saved_cfg = TrainConfig(**meta["train_config"])
    run = new_run(GPTConfig(**meta["model_config"]), train_cfg or saved_cfg, tokenizer)
    run.model.load_state_dict(model_state)
    run.optimizer.load_state_dict(optim_state)
    run.batch_rng.bit_generator.state = meta["batch_rng"]
    run.model_rng.bit_generator.state = meta["model_rng"]
    run.step, run.best_val = meta["step"], meta["best_val"]
    return run


def evaluate_and_save(run, train_ids, val_ids, elapsed):
    """Measure train/val loss, append them to log.jsonl, checkpoint (best too if improved)."""
    cfg, out = run.train_cfg, Path(run.train_cfg.out_dir)
    record = {"iter": run.step, "lr": run.optimizer.lr, "elapsed_s": round(elapsed, 2)}
    for name, ids in (("train_loss", train_ids), ("val_loss", val_ids)):
        record[name] = evaluate(run.model, ids, cfg.eval_iters, cfg.batch_size, cfg.seed)
    if not math.isfinite(record["train_loss"] + record["val_loss"]):
        _diverged(run, f"evaluation loss {record['val_loss']}")  # never checkpoint a broken model
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if record["val_loss"] < run.best_val:
        run.best_val = record["val_loss"]
        checkpoint(run, out / "best.npz")
    checkpoint(run, out / "ckpt.npz")
    return record


def train(run, train_ids, val_ids, progress=True):
    """Train `run` up to train_cfg.max_iters steps; returns the run (losses in run.losses)."""
    cfg = run.train_cfg
    tokens_per_step = cfg.batch_size * cfg.grad_accum * run.model.config.block_size
    _trim_log(Path(cfg.out_dir) / "log.jsonl", run.step)
    bar = tqdm(total=cfg.max_iters, initial=run.step, disable=not progress, unit="step")
    start, stop = time.time(), _GracefulStop()
    with stop:
        while run.step < cfg.max_iters and not stop.requested:
            if run.step % cfg.eval_interval == 0:
                record = evaluate_and_save(run, train_ids, val_ids, time.time() - start)
                bar.write(_describe(record))
            tick = time.perf_counter()
            loss, norm = train_step(run, train_ids)
            run.losses.append(loss)
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.optimizer.lr:.2e}",
                            tok_s=f"{tokens_per_step / (time.perf_counter() - tick):.0f}")
        if stop.requested:  # save at once; the evaluation can wait for the resumed run
            checkpoint(run, Path(cfg.out_dir) / "ckpt.npz")
            bar.write(f"stopped at step {run.step}; resume with --resume")
        else:
            bar.write(_describe(evaluate_and_save(run, train_ids, val_ids, time.time() - start)))
    bar.close()
    return run


def _trim_log(path, step):
    """Keep only the log's records from before `step`: a fresh run (step 0) starts an empty log
    instead of appending to an old run's, and a resumed run drops what the interrupted one
    logged after its checkpoint, so the log reads as one uninterrupted run's."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if _logged_before(line, step)))


def _logged_before(line, step):
    try:
        return json.loads(line)["iter"] < step
    except (ValueError, KeyError, TypeError):  # e.g. a line cut short by a crash
        return False


def _describe(record):
    return (f"step {record['iter']}: train loss {record['train_loss']:.4f}, "
            f"val loss {record['val_loss']:.4f}")


class _GracefulStop:
    """While active, the first Ctrl-C only asks the loop to stop after the current step (so the
    checkpoint is consistent); a second one interrupts at once."""

    requested = False

    def __enter__(self):
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # signals reach only main
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, saving a checkpoint, then stopping "
              "(Ctrl-C again to abort).", flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
