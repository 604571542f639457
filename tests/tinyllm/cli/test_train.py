"""tinyllm/cli/train.py: `tinyllm train` end to end, resume, --init, runs never lost by
accident (refusal, lock, SIGTERM, Ctrl-C), and every mistake one clear line."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.tinyllm.cli.helpers import SMALL, needs_data
from tinyllm.cli import main
from tinyllm.load import load_model
from tinyllm.run_dir import claim
from tinyllm.train import restore


@needs_data
def test_train_then_resume_then_sample_on_tiny_shakespeare(tmp_path, capsys):
    out = str(tmp_path / "out")
    main(["train", *SMALL, "--max_iters", "3", "--sample_tokens", "20", "--out_dir", out])
    printed = capsys.readouterr().out
    assert "vocabulary 65" in printed and "--- sample ---" in printed
    main(["train", "--resume", "--max-iters", "5", "--sample-tokens", "0", "--out-dir", out,
          "--no-progress"])
    assert "from step 3 to 5" in capsys.readouterr().out
    steps = [json.loads(line)["iter"] for line in open(os.path.join(out, "log.jsonl"))]
    assert steps[-1] == 5
    main(["sample", "--checkpoint", out, "--prompt", "ROMEO:", "--max-new-tokens", "30",
          "--seed", "1"])
    first = capsys.readouterr().out
    main(["sample", "--checkpoint", out, "--prompt", "ROMEO:", "--max-new-tokens", "30",
          "--seed", "1"])
    assert first.startswith("ROMEO:") and len(first) > 30 and capsys.readouterr().out == first


def test_help_shows_each_fields_meaning_default_and_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "shakespeare-char", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--n-layer", "--learning-rate", "--grad-accum", "--resume", "--init",
                 "--overwrite", "--data", "--dataset"):
        assert flag in text
    assert "channels C of the residual stream (default: 384)" in text  # that preset's n_embd
    assert "--pos {learned,rope,sinusoidal}" in text


def train(tmp_path, text_file, *extra):
    main(["train", *SMALL, "--data", str(text_file), "--sample-tokens", "0",
          "--out-dir", str(tmp_path / "out"), *extra])


def test_a_run_is_never_replaced_unless_asked(tmp_path, text_file, capsys):
    train(tmp_path, text_file, "--max-iters", "2")
    before = (tmp_path / "out" / "ckpt.npz").read_bytes()
    with pytest.raises(SystemExit, match="already holds a run.*--resume.*--overwrite"):
        main(["train", *SMALL, "--data", str(text_file), "--max-iters", "2",
              "--out-dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "ckpt.npz").read_bytes() == before
    train(tmp_path, text_file, "--max-iters", "1", "--overwrite")
    assert restore(tmp_path / "out" / "ckpt.npz").step == 1


def test_two_processes_cannot_train_into_one_folder(tmp_path, text_file):
    lock = claim(tmp_path / "out")
    try:
        with pytest.raises(SystemExit, match="another process is training into"):
            train(tmp_path, text_file, "--max-iters", "1")
    finally:
        lock.close()


def test_resume_writes_where_the_user_points_not_where_the_run_was(tmp_path, text_file):
    train(tmp_path, text_file, "--max-iters", "2")
    (tmp_path / "out").rename(tmp_path / "moved")
    main(["train", "--resume", "--out-dir", str(tmp_path / "moved"), "--max-iters", "3",
          "--no-progress", "--sample-tokens", "0"])
    assert not (tmp_path / "out").exists()
    assert restore(tmp_path / "moved" / "ckpt.npz").step == 3


@pytest.mark.parametrize("flags, message", [
    (["--n-layer", "0"], "n_layer must be positive"),
    (["--n-embd", "30", "--n-head", "4"], "not divisible"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--eval-interval", "0"], "--eval-interval must be positive"),
    (["--eval-iters", "0"], "--eval-iters must be positive"),
    (["--grad-accum", "0"], "--grad-accum must be positive"),
    (["--learning-rate", "-1"], "--learning-rate must be >= 0"),
    (["--pos", "alibi"], "invalid choice: 'alibi'"),
])
def test_bad_values_are_one_clear_line(tmp_path, text_file, flags, message):
    with pytest.raises(SystemExit, match=message):
        main(["train", "--data", str(text_file), "--out-dir", str(tmp_path / "o"), *flags])


def test_bad_data_files_say_what_is_wrong(tmp_path):
    cases = {"missing.txt": None, "empty.txt": b"", "binary.txt": b"\x00\x01\x02",
             "latin1.txt": "caf\xe9 au lait".encode("latin-1")}
    messages = {"missing.txt": "does not exist", "empty.txt": "holds no text",
                "binary.txt": "binary file", "latin1.txt": "not UTF-8"}
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(SystemExit, match=messages[name]):
            main(["train", "--data", str(tmp_path / name), "--out-dir", str(tmp_path / "o" / name)])
    with pytest.raises(SystemExit, match="is a directory.*--dataset"):
        main(["train", "--data", str(tmp_path), "--out-dir", str(tmp_path / "d")])


def test_resume_refuses_to_change_the_models_shape(tmp_path, text_file):
    train(tmp_path, text_file, "--max-iters", "1")
    with pytest.raises(SystemExit, match="--n-layer cannot change the shape"):
        main(["train", "--resume", "--out-dir", str(tmp_path / "out"), "--n-layer", "2"])


def test_init_starts_a_fresh_run_from_the_weights(tmp_path, text_file, capsys):
    train(tmp_path, text_file, "--max-iters", "4")
    more = tmp_path / "more.txt"
    more.write_text("to be or not to be that is the question " * 50)
    main(["train", "--init", str(tmp_path / "out"), "--data", str(more), "--max-iters", "2",
          "--eval-interval", "1", "--eval-iters", "2", "--out-dir", str(tmp_path / "ft"),
          "--no-progress", "--sample-tokens", "0"])
    run = restore(tmp_path / "ft" / "ckpt.npz")
    assert run.step == 2 and run.optimizer.t == 2  # fresh step counter and optimizer
    log = [json.loads(line) for line in open(tmp_path / "ft" / "log.jsonl")]
    assert [r["iter"] for r in log] == [0, 1, 2]  # evaluated once before the first step
    base, _, _ = load_model(tmp_path / "out" / "ckpt.npz")
    start = restore(tmp_path / "ft" / "best.npz") if log[0]["val_loss"] <= min(
        r["val_loss"] for r in log) else None
    if start is not None:  # best.npz is the step-0 evaluation: the base's weights exactly
        for a, b in zip(base.parameters(), start.model.parameters()):
            np.testing.assert_array_equal(a.data, b.data)


def test_init_with_characters_the_model_cannot_encode(tmp_path, text_file):
    train(tmp_path, text_file, "--max-iters", "1")
    odd = tmp_path / "odd.txt"
    odd.write_text("to be? or NOT to be! " * 100)
    unknown = "5 character\\(s\\) .* cannot encode: '!' '\\?' 'N' 'O' 'T'"
    with pytest.raises(SystemExit, match=unknown):
        main(["train", "--init", str(tmp_path / "out"), "--data", str(odd),
              "--out-dir", str(tmp_path / "ft")])
    main(["train", "--init", str(tmp_path / "out"), "--data", str(odd), "--drop-unknown-chars",
          "--max-iters", "1", "--out-dir", str(tmp_path / "ft2"), "--no-progress",
          "--sample-tokens", "0", "--eval-iters", "1"])
    assert restore(tmp_path / "ft2" / "ckpt.npz").step == 1


def test_a_checkpoint_with_non_finite_moments_is_never_written(tmp_path, text_file):
    with pytest.raises(SystemExit, match="diverged"):
        train(tmp_path, text_file, "--max-iters", "6", "--grad-clip", "0",
              "--learning-rate", "1e30", "--warmup-iters", "0")
    ckpt = tmp_path / "out" / "ckpt.npz"
    if ckpt.exists():  # whatever was saved resumes into finite numbers
        run = restore(ckpt)
        assert all(np.isfinite(v).all() for v in run.optimizer.state_dict().values())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_consistent_checkpoint_and_exits_non_zero(tmp_path, text_file, sig):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tinyllm.cli", "train", *SMALL, "--data", str(text_file),
               "--max-iters", "100000", "--eval-interval", "1000", "--out-dir", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first evaluation has been printed: training is under way
        if line.startswith("step 0:"):
            break
    time.sleep(1.0)
    proc.send_signal(sig)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 128 + sig
    assert "stopped at step" in rest and "--- sample ---" not in rest
    assert "Traceback" not in proc.stderr.read()
    step = int(rest.split("stopped at step ")[1].split(";")[0])
    assert step > 0 and restore(out / "ckpt.npz").step == step


def test_a_second_ctrl_c_exits_at_once_without_a_traceback(tmp_path, text_file):
    command = [sys.executable, "-m", "tinyllm.cli", "train", *SMALL, "--data", str(text_file),
               "--max-iters", "100000", "--eval-interval", "1000",
               "--out-dir", str(tmp_path / "out")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("step 0:"):
            break
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("error, message", [
    (OSError(28, "No space left on device", "ckpt.npz"), "ckpt.npz: No space left on device"),
    (PermissionError(13, "Permission denied", "out"), "out: Permission denied"),
])
def test_a_full_disk_or_read_only_folder_is_one_line(tmp_path, text_file, monkeypatch, error,
                                                     message):
    """The file system refusing a write (as a full disk or a read-only folder does; root may
    write anywhere, so the refusal is simulated) ends with one line, not a traceback."""
    def refuse(*args, **kwargs):
        raise error
    monkeypatch.setattr("tinyllm.checkpoint.write_atomic", refuse)
    with pytest.raises(SystemExit, match=f"^error: {message}$"):
        train(tmp_path, text_file, "--max-iters", "1")


def test_offline_without_data_says_where_to_put_the_text(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")
    monkeypatch.delenv("TINYLLM_DATA", raising=False)
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(SystemExit, match="error: could not download .* --data PATH"):
        main(["train", "--out-dir", str(tmp_path / "out")])
