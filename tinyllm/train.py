"""The training loop: steps, evaluation, checkpoints, exact resume.

One loop serves pretraining and fine-tuning. What differs is the *task*: an object with
    task.loss(model, cfg, rng) -> (loss Tensor, tokens in the micro-batch)
    task.evaluate(model, cfg)  -> {"val_loss": ..., other metrics}
`Pretraining` below predicts the next token of random windows of a token stream; the
fine-tuning tasks (tinyllm/finetune/) score responses to instructions, or preferences.

One optimizer step: for each of grad_accum micro-batches, forward, loss / grad_accum, backward
(gradients add up across micro-batches); clip the global gradient norm; set the scheduled
learning rate; AdamW update. On two threads a micro-batch runs as two halves at once
(split_batch.py), with the whole batch's loss, gradients and dropout masks. Every
eval_interval steps the task is evaluated (eval mode, no graph), logged to out_dir/log.jsonl,
and the state checkpointed: `ckpt.npz` always (to resume), `best.npz` when validation improves.
Every step appends its loss to out_dir/steps.jsonl.

Resuming is exact: a checkpoint holds the parameters, AdamW's moments, the step, and the state of
both random generators (batch sampling, dropout), and evaluation draws its batches from a fresh
generator of its own, so an interrupted and resumed run computes the same losses as one that
ran straight through. Ctrl-C (or SIGTERM) finishes the current step, saves, and stops.

Under `mpiexec -n N` (distributed.py) N ranks share each step's micro-batches and add up their
gradients; the hooks are `run.dist` (one process by default) and rank 0 alone writing files.
"""
import dataclasses
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
from tinyllm.data.batches import get_batch
from tinyllm.distributed import OneProcess
from tinyllm.finetune.lora import LoRASpec
from tinyllm.model import GPT
from tinyllm.optim import AdamW, lr_at, param_groups
from tinyllm.run_dir import append_record, trim_log
from tinyllm.split_batch import SplitBatch


class TrainingDiverged(RuntimeError):
    """The loss, a gradient or a weight became inf or nan; the last checkpoint is untouched."""


@dataclass
class Run:
    """Everything that changes while training, so it can be checkpointed and restored whole."""

    model: GPT
    optimizer: AdamW
    tokenizer: object
    train_cfg: TrainConfig
    batch_rng: np.random.Generator  # draws the training batches
    model_rng: np.random.Generator  # initialised the model; draws the dropout masks
    step: int = 0
    best_val: float = math.inf
    elapsed: float = 0.0  # seconds of training so far, across resumes
    tokens: int = 0  # tokens trained on so far
    losses: list = field(default_factory=list)  # training loss of every step run here
    stopped: int = 0  # the signal that stopped the run early (SIGINT, SIGTERM), else 0
    dist: object = field(default_factory=OneProcess)  # the ranks training it (distributed.py)
    lora: object = None  # a finetune.lora.LoRASpec when only adapters train, else None
    task_meta: dict = field(default_factory=dict)  # what a fine-tuning task needs on resume
    split: SplitBatch = field(init=False)  # the model as the steps call it (split_batch.py)

    def __post_init__(self):
        self.split = SplitBatch(self.model)


class Pretraining:
    """Next-token prediction on random block_size windows of a token stream (nanoGPT)."""

    def __init__(self, train_ids, val_ids):
        self.train_ids, self.val_ids = train_ids, val_ids  # (N,) token ids each

    def loss(self, model, cfg, rng):
        x, y = get_batch(self.train_ids, cfg.batch_size, model.config.block_size, rng)  # (B, T)
        return model(x, y)[1], x.size

    def describe(self):
        return f"{len(self.train_ids):,} train / {len(self.val_ids):,} val tokens"

    def skip(self, model, cfg, rng):
        """Draw the micro-batch `loss` would, and drop it: another rank computes it."""
        get_batch(self.train_ids, cfg.batch_size, model.config.block_size, rng)

    def evaluate(self, model, cfg):
        """Mean train and val loss, each over eval_iters batches of fixed windows."""
        return {name: evaluate(model, ids, cfg.eval_iters, cfg.batch_size, cfg.seed)
                for name, ids in (("train_loss", self.train_ids), ("val_loss", self.val_ids))}


def new_run(model_cfg, train_cfg, tokenizer, weights=None, lora=None):
    """A run at step 0: a model of `model_cfg`, freshly initialised or holding `weights` (a
    state dict: fine-tuning's start), with LoRA adapters if `lora` (a LoRASpec) is given, a
    fresh optimizer over its trainable parameters, and generators seeded from the config."""
    model_rng = np.random.default_rng(train_cfg.seed)
    model = GPT(dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size), model_rng)
    if weights is not None:
        model.load_state_dict(weights)
    if lora is not None:
        lora.adapt(model, model_rng)  # freezes the base: the optimizer sees the adapters only
    optimizer = AdamW(param_groups(model, train_cfg.weight_decay), lr=train_cfg.learning_rate,
                      betas=(train_cfg.beta1, train_cfg.beta2))
    batch_rng = np.random.default_rng([train_cfg.seed, 1])  # independent of model_rng
    return Run(model, optimizer, tokenizer, train_cfg, batch_rng, model_rng, lora=lora)


def train_step(run, task):
    """One optimizer step over grad_accum micro-batches on each of run.dist.size ranks (one
    without MPI); returns (mean loss, grad norm), both of the whole global batch."""
    cfg, dist = run.train_cfg, run.dist
    total, tokens = dist.sum(*_accumulate(run, task))  # each rank's share, added up
    run.tokens += int(tokens)
    params = dist.sum_gradients(run.optimizer)  # under ZeRO-1: this rank's shard of them
    norm = dist.clip_grad_norm(params, cfg.grad_clip) if cfg.grad_clip > 0 else 0.0
    if not (math.isfinite(total) and math.isfinite(norm)):
        _diverged(run, f"loss {total}, gradient norm {norm}")
    run.optimizer.lr = lr_at(run.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                             cfg.lr_decay_iters)
    run.optimizer.step()
    run.optimizer.zero_grad()
    run.step += 1
    return total, norm


def _accumulate(run, task):
    """Forward and backward this rank's micro-batches of the step's n = grad_accum * ranks,
    each loss scaled by 1/n so the gradients add up to the mean's; returns (this rank's part of
    the mean loss, its tokens). Every rank draws all n windows in the same order, so rank r sees
    exactly the micro-batches one process would, and micro-batch k draws its dropout masks from
    stream k (a jump of 2^127 draws per k from the step's start), whichever rank computes it."""
    cfg, model, n = run.train_cfg, run.model, run.train_cfg.grad_accum * run.dist.size
    model.train()
    start, total, tokens = run.model_rng.bit_generator.jumped(0), 0.0, 0  # jumped(0): a copy
    for k in range(n):
        if not run.dist.mine(k, n):
            task.skip(model, cfg, run.batch_rng)
            continue
        run.model_rng.bit_generator.state = start.jumped(k).state
        loss, count = task.loss(run.split, cfg, run.batch_rng)  # both cores' halves at once
        (loss * (1.0 / n)).backward()  # gradients add across micro-batches
        total, tokens = total + loss.item() / n, tokens + count
    run.model_rng.bit_generator.state = start.jumped(n).state  # the next step's streams
    return total, tokens


def _diverged(run, what):
    raise TrainingDiverged(
        f"{what} at step {run.step}: training diverged. The last checkpoint in "
        f"{run.train_cfg.out_dir} is intact; try a lower --learning-rate.")


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


def save(run, path):
    """Checkpoint the run to `path`, only if every weight and moment is finite: a checkpoint
    on disk is always one that training can continue from."""
    model_state, optim_state = run.model.state_dict(), run.optimizer.state_dict()
    if not run.dist.is_root:  # rank 0 writes (under ZeRO-1 state_dict gathered the moments)
        return
    for name, array in {**model_state, **optim_state}.items():
        if not np.isfinite(array).all():
            _diverged(run, f"non-finite values in {name}")
    meta = {"step": run.step, "best_val": run.best_val, "elapsed_s": run.elapsed,
            "tokens": run.tokens, "model_config": dataclasses.asdict(run.model.config),
            "train_config": dataclasses.asdict(run.train_cfg),
            "batch_rng": run.batch_rng.bit_generator.state,
            "model_rng": run.model_rng.bit_generator.state}
    if run.lora is not None:
        meta["lora"] = run.lora.to_dict()
    if run.task_meta:
        meta["task"] = run.task_meta
    save_checkpoint(path, model_state, optim_state, meta, run.tokenizer)


def restore(path, out_dir=None):
    """A Run continued from a checkpoint. It writes into `out_dir` (default: the folder the
    checkpoint is in), never into the folder recorded inside the file, which may have moved."""
    model_state, optim_state, meta, tokenizer = load_checkpoint(path)
    out_dir = Path(path).parent if out_dir is None else out_dir
    train_cfg = dataclasses.replace(TrainConfig(**meta["train_config"]), out_dir=str(out_dir))
    lora = LoRASpec.from_dict(meta["lora"]) if "lora" in meta else None
    run = new_run(GPTConfig(**meta["model_config"]), train_cfg, tokenizer, lora=lora)
    run.model.load_state_dict(model_state)
    run.task_meta = meta.get("task", {})
    run.optimizer.load_state_dict(optim_state)
    run.batch_rng.bit_generator.state = meta["batch_rng"]
    run.model_rng.bit_generator.state = meta["model_rng"]
    run.step, run.best_val = meta["step"], meta["best_val"]
    run.elapsed, run.tokens = meta.get("elapsed_s", 0.0), meta.get("tokens", 0)
    return run


def evaluate_and_save(run, task):
    """Evaluate the task, append the record to log.jsonl, checkpoint (best too if improved)."""
    out = Path(run.train_cfg.out_dir)
    cfg = run.train_cfg
    lr = lr_at(run.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)
    record = {"iter": run.step, "lr": lr, "elapsed_s": round(run.elapsed, 2),
              "tokens": run.tokens, **task.evaluate(run.model, run.train_cfg)}
    if not all(math.isfinite(v) for v in record.values()):
        _diverged(run, f"evaluation {record}")  # never checkpoint a broken model
    if run.dist.is_root:
        out.mkdir(parents=True, exist_ok=True)
        append_record(out / "log.jsonl", record)
    if record["val_loss"] < run.best_val:
        run.best_val = record["val_loss"]
        save(run, out / "best.npz")
    save(run, out / "ckpt.npz")
    return record


def train(run, task, progress=True):
    """Train `run` on `task` up to train_cfg.max_iters steps; returns the run (its losses in
    run.losses, and run.stopped set if a signal ended it early)."""
    cfg, out = run.train_cfg, Path(run.train_cfg.out_dir)
    if run.dist.is_root:  # rank 0 alone writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        for name in ("log.jsonl", "steps.jsonl"):
            trim_log(out / name, run.step)  # a fresh run starts empty logs, a resumed one cuts
    bar = tqdm(total=cfg.max_iters, initial=run.step, disable=not progress, unit="step")
    with _GracefulStop() as stop:
        while not stop.agreed(run.dist) and run.step < cfg.max_iters:
            if run.step % cfg.eval_interval == 0:
                bar.write(describe(evaluate_and_save(run, task)))
            _timed_step(run, task, bar)
        if stop.signal:  # save at once; the evaluation can wait for the resumed run
            save(run, out / "ckpt.npz")
            bar.write(f"stopped at step {run.step}; resume with --resume")
            run.stopped = stop.signal
        else:
            bar.write(describe(evaluate_and_save(run, task)))
    bar.close()
    return run


def _timed_step(run, task, bar):
    tick = time.perf_counter()
    tokens_before = run.tokens
    loss, _ = train_step(run, task)
    seconds = time.perf_counter() - tick
    run.elapsed += seconds
    run.losses.append(loss)
    if run.dist.is_root:
        append_record(Path(run.train_cfg.out_dir) / "steps.jsonl",
                      {"iter": run.step - 1, "loss": loss, "lr": run.optimizer.lr,
                       "tokens": run.tokens, "elapsed_s": round(run.elapsed, 3)})
    bar.update()
    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{run.optimizer.lr:.2e}",
                    tok_s=f"{(run.tokens - tokens_before) / seconds:.0f}")


def describe(record):
    """One line for an evaluation record: its step and every metric."""
    metrics = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in record.items()
                        if k not in ("iter", "lr", "elapsed_s", "tokens"))
    return f"step {record['iter']}: {metrics}"


class _GracefulStop:
    """While active, the first Ctrl-C (SIGINT) or SIGTERM only asks the loop to stop after the
    current step, so the checkpoint is consistent; a second Ctrl-C interrupts at once."""

    signal = 0

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach only main
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: finishing this step, saving a checkpoint, then "
              "stopping (Ctrl-C again to abort).", flush=True)

    def agreed(self, dist):
        """The signal if any rank received one (0 if none), so all ranks stop at one step."""
        self.signal = dist.max(self.signal)
        return self.signal

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
