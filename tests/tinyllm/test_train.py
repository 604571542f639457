"""tinyllm/train.py: resuming is exact (losses equal an uninterrupted run's), evaluation leaves
training's randomness alone, and divergence stops with the last checkpoint intact."""
import json
from pathlib import Path

import numpy as np
import pytest

from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.corpus import load_data
from tinyllm.train import (Pretraining, TrainingDiverged, eval_windows, evaluate, new_run,
                           restore, save, train)

MODEL = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.1)


def config(text_file, tmp_path, **changes):
    fields = dict(out_dir=str(tmp_path / "out"), data=str(text_file), batch_size=4,
                  max_iters=8, eval_interval=3, eval_iters=2, warmup_iters=2, lr_decay_iters=8,
                  sample_tokens=0)
    return TrainConfig(**{**fields, **changes})


def start(cfg):
    tokenizer, train_ids, val_ids = load_data(cfg)
    return new_run(MODEL, cfg, tokenizer), Pretraining(train_ids, val_ids)


def test_resume_reproduces_the_uninterrupted_losses(text_file, tmp_path):
    straight, task = start(config(text_file, tmp_path / "a"))
    train(straight, task, progress=False)

    first, _ = start(config(text_file, tmp_path / "b", max_iters=5))  # "interrupted" at 5
    train(first, task, progress=False)
    resumed = restore(tmp_path / "b" / "out" / "ckpt.npz")
    resumed.train_cfg.max_iters = 8
    train(resumed, task, progress=False)

    assert len(straight.losses) == 8 and first.losses + resumed.losses == straight.losses
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    # the interrupted run's final evaluation (step 5) is dropped on resume: one run's log
    assert log(tmp_path / "b" / "out") == log(tmp_path / "a" / "out")


def log(out):
    return [json.loads(line) | {"elapsed_s": 0} for line in (out / "log.jsonl").open()]


def test_log_and_checkpoints_are_written(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path))
    train(run, task, progress=False)
    out = tmp_path / "out"
    records = log(out)
    assert [r["iter"] for r in records] == [0, 3, 6, 8]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert (out / "best.npz").is_file() and restore(out / "ckpt.npz").step == 8
    with open(out / "log.jsonl", "a") as f:
        f.write('{"iter": 9, "val_lo')  # a record cut short by a crash
    again, _ = start(config(text_file, tmp_path, max_iters=4))  # a new run, same out_dir
    train(again, task, progress=False)
    assert [r["iter"] for r in log(out)] == [0, 3, 4]  # replaces the old log, not appended


def test_evaluation_is_repeatable_and_uses_no_training_randomness(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path, eval_iters=3))
    state = run.batch_rng.bit_generator.state
    a = evaluate(run.model, task.val_ids, 3, 4)
    assert a == evaluate(run.model, task.val_ids, 3, 4)
    assert run.batch_rng.bit_generator.state == state


def test_evaluation_is_the_mean_loss_over_its_windows(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path))
    val_ids = task.val_ids
    T = run.model.config.block_size
    windows = list(eval_windows(val_ids, 3, 4, T, seed=5))
    assert sum(len(x) for x, _ in windows) == 12
    assert all((x[:, 1:] == y[:, :-1]).all() for x, y in windows)
    x, y = np.concatenate([w[0] for w in windows]), np.concatenate([w[1] for w in windows])
    run.model.eval()  # no dropout, as evaluate runs it
    per_window = [run.model(x[i:i + 1], y[i:i + 1])[1].item() for i in range(len(x))]
    assert evaluate(run.model, val_ids, 3, 4, seed=5) == pytest.approx(np.mean(per_window))


def test_divergence_stops_and_keeps_the_last_checkpoint(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path, max_iters=3))
    train(run, task, progress=False)
    ckpt = Path(run.train_cfg.out_dir) / "ckpt.npz"
    saved = ckpt.read_bytes()
    run.train_cfg.max_iters = 6
    run.model.transformer.wte.weight.data[0, 0] = np.nan  # poison the model
    with pytest.raises(TrainingDiverged, match="diverged.*intact"):
        train(run, task, progress=False)
    assert ckpt.read_bytes() == saved


def test_prepared_token_files_train_exactly_like_the_same_tokens_in_memory(text_file, tmp_path):
    from tinyllm.data.pipeline import prepare

    prepare(str(text_file), str(tmp_path / "prepared"), "char", progress=False)
    cfg = config(text_file, tmp_path, dataset=str(tmp_path / "prepared"), max_iters=4)
    from_files, task = start(cfg)
    assert isinstance(task.train_ids, np.memmap)
    train(from_files, task, progress=False)
    in_memory = new_run(MODEL, config(text_file, tmp_path / "m", max_iters=4),
                        from_files.tokenizer)
    in_memory_task = Pretraining(np.array(task.train_ids), np.array(task.val_ids))
    train(in_memory, in_memory_task, progress=False)
    assert from_files.losses == in_memory.losses


def test_steps_log_and_elapsed_time_continue_across_a_resume(text_file, tmp_path):
    first, task = start(config(text_file, tmp_path, max_iters=5))
    train(first, task, progress=False)
    resumed = restore(tmp_path / "out" / "ckpt.npz")
    assert resumed.elapsed == first.elapsed > 0 and resumed.tokens == first.tokens
    resumed.train_cfg.max_iters = 8
    train(resumed, task, progress=False)
    steps = [json.loads(line) for line in open(tmp_path / "out" / "steps.jsonl")]
    assert [s["iter"] for s in steps] == list(range(8))
    assert [s["tokens"] for s in steps] == [4 * 16 * (i + 1) for i in range(8)]
    elapsed = [s["elapsed_s"] for s in steps]
    assert elapsed == sorted(elapsed) and steps[5]["elapsed_s"] >= steps[4]["elapsed_s"]


def test_a_checkpoint_is_only_written_when_every_array_is_finite(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path, max_iters=2))
    train(run, task, progress=False)
    ckpt = tmp_path / "out" / "ckpt.npz"
    saved = ckpt.read_bytes()
    run.optimizer.v[0][...] = np.inf  # what a huge learning rate without clipping leaves
    with pytest.raises(TrainingDiverged, match="non-finite values in v.0"):
        save(run, ckpt)
    assert ckpt.read_bytes() == saved


def test_restore_writes_into_the_folder_it_is_told(text_file, tmp_path):
    run, task = start(config(text_file, tmp_path, max_iters=2))
    train(run, task, progress=False)
    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)
    assert restore(moved / "ckpt.npz").train_cfg.out_dir == str(moved)
    assert restore(moved / "ckpt.npz", tmp_path / "x").train_cfg.out_dir == str(tmp_path / "x")
