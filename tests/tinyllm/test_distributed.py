"""tinyllm/distributed.py and zero.py: N ranks train exactly like one process with N times the
micro-batches, ZeRO-1 like plain data parallelism, a checkpoint moves between rank counts, a
failing rank ends the job, and a plain run never imports mpi4py.

The MPI tests start `mpiexec -n 2` (skipped without mpi4py or mpiexec). Tolerances: per-step
losses to 1e-6 relative and weights to 1e-6 absolute, float32 rounding when the gradients are
summed in another order (measured: 6e-8 and 1.2e-7). The model has no biases: the attention's
key bias has an exact gradient of zero (softmax ignores a shift shared by all keys), so its
float32 gradient is rounding noise that AdamW scales up to steps of +-lr, and any change of
summation order moves it by up to lr (measured 2e-5 at lr 1e-2).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import load_checkpoint
from tinyllm.cli import main
from tinyllm.distributed import FlatLayout, OneProcess, launched_size
from tinyllm.train import Pretraining

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or shutil.which("mpiexec") is None,
    reason="needs mpi4py and mpiexec (pip install -e '.[mpi]')")

# A tiny bias-free model, dropout on (its masks must agree too), a learning rate high enough
# that a wrong gradient would show within 8 steps.
FLAGS = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16",
         "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "3", "--max-iters", "8",
         "--dropout", "0.1", "--bias", "false", "--learning-rate", "0.01", "--warmup-iters",
         "2", "--lr-decay-iters", "8", "--sample-tokens", "0", "--no-progress"]


def test_launched_size_reads_the_launchers_variables():
    assert launched_size({}) == 1
    assert launched_size({"PMI_SIZE": "3"}) == 3
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "8"}) == 8


def test_flat_layout_packs_every_parameter_in_its_place():
    from autograd.nn import Parameter

    params = [Parameter(np.arange(6.0).reshape(2, 3)), Parameter(np.array([7.0, 8.0]))]
    layout = FlatLayout(params, ranks=4)
    flat = layout.pack([p.data for p in params], np.full(layout.size, -1.0))
    assert flat.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]  # 8 values: no padding needed for 4
    views = layout.views(flat)
    assert [v.shape for v in views] == [(2, 3), (2,)] and np.shares_memory(views[0], flat)
    assert layout.pack([None, params[1].data], flat)[:6].tolist() == [0] * 6  # no gradient
    assert FlatLayout(params, ranks=3).size == 9


def test_skip_draws_what_loss_would():
    from tinyllm.config import GPTConfig, TrainConfig
    from tinyllm.model import GPT

    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    task, cfg = Pretraining(np.arange(100) % 10, np.arange(50) % 10), TrainConfig(batch_size=3)
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    task.loss(model, cfg, a)
    task.skip(model, cfg, b)
    assert a.bit_generator.state == b.bit_generator.state


def test_one_process_changes_nothing():
    one = OneProcess()
    assert one.size == 1 and one.is_root and all(one.mine(k, 4) for k in range(4))
    assert one.sum(1.5, 2) == [1.5, 2.0] and one.max(15) == 15


def test_a_plain_run_does_not_import_mpi4py(text_file, tmp_path):
    code = ("import sys; from tinyllm.cli import main; main(sys.argv[1:]); "
            "print('mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    out = subprocess.run([sys.executable, "-c", code, "train", *FLAGS, "--max-iters", "1",
                          "--data", str(text_file), "--out-dir", str(tmp_path / "out")],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    words = np.random.default_rng(0).choice(["to be", "or not", "that is", "the question"], 3000)
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(" ".join(words) + "\n")
    return path


def mpiexec(*args, timeout=300):
    """Run `mpiexec -n 2 python ARGS` (one thread per rank); returns the CompletedProcess."""
    env = dict(os.environ, AUTOGRAD_THREADS="1")
    return subprocess.run(["mpiexec", "-n", "2", sys.executable, *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def train_on_two_ranks(text_file, out, *extra):
    done = mpiexec("-m", "tinyllm.cli", "train", *FLAGS, "--data", str(text_file),
                   "--out-dir", str(out), *extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("data parallel: 2 ranks x 1 micro-batches") == 1  # rank 0 alone
    return done


@pytest.fixture(scope="module")
def runs(text_file, tmp_path_factory):
    """Three runs of one global batch of 2 micro-batches: one process with grad_accum 2, two
    ranks with 1 each, and two ranks with 1 each under ZeRO-1."""
    base = tmp_path_factory.mktemp("runs")
    main(["train", *FLAGS, "--grad-accum", "2", "--data", str(text_file),
          "--out-dir", str(base / "one")])
    train_on_two_ranks(text_file, base / "dp", "--grad-accum", "1")
    train_on_two_ranks(text_file, base / "zero", "--grad-accum", "1", "--zero", "1")
    return base


def losses(out):
    return [json.loads(line)["loss"] for line in open(Path(out) / "steps.jsonl")]


def assert_same_run(a, b):
    """Equal per-step losses, weights and AdamW moments, to the tolerances stated above."""
    np.testing.assert_allclose(losses(a), losses(b), rtol=1e-6)
    assert len(losses(a)) == 8
    (weights_a, moments_a, *_), (weights_b, moments_b, *_) = (
        load_checkpoint(Path(out) / "ckpt.npz") for out in (a, b))
    assert weights_a.keys() == weights_b.keys() and moments_a.keys() == moments_b.keys()
    for name in weights_a:
        np.testing.assert_allclose(weights_a[name], weights_b[name], rtol=0, atol=1e-6)
    for name in moments_a:
        np.testing.assert_allclose(moments_a[name], moments_b[name], rtol=1e-4, atol=1e-7)


@needs_mpi
def test_two_ranks_train_like_one_process_with_twice_the_micro_batches(runs):
    assert_same_run(runs / "dp", runs / "one")


@needs_mpi
def test_zero1_trains_like_plain_data_parallelism(runs):
    assert_same_run(runs / "zero", runs / "dp")


@needs_mpi
def test_a_checkpoint_from_two_ranks_resumes_on_one(runs, text_file, tmp_path):
    out = tmp_path / "moved"
    train_on_two_ranks(text_file, out, "--grad-accum", "1", "--zero", "1", "--max-iters", "4")
    main(["train", "--resume", "--grad-accum", "2", "--max-iters", "8", "--out-dir", str(out),
          "--no-progress"])
    np.testing.assert_allclose(losses(out), losses(runs / "one"), rtol=1e-6)


@needs_mpi
def test_zero1_keeps_half_the_moments_on_each_of_two_ranks(text_file, tmp_path):
    done = mpiexec(str(HERE / "mpi_cases.py"), "memory", str(text_file), str(tmp_path))
    assert done.returncode == 0, done.stderr
    sizes = json.loads(done.stdout.splitlines()[-1])
    assert sum(sizes["per_rank"]) == sizes["one_process"]  # every moment kept, once
    assert max(sizes["per_rank"]) <= sizes["one_process"] / 2 + 8  # + at most 1 value each


@needs_mpi
def test_a_failing_rank_ends_the_whole_job_with_its_error(text_file, tmp_path):
    # A hang would be rank 0 waiting forever in its Allreduce: mpiexec's timeout fails the test.
    done = mpiexec(str(HERE / "mpi_cases.py"), "fail", str(text_file), str(tmp_path), timeout=120)
    assert done.returncode != 0
    assert "error on rank 1 of 2: RuntimeError: a deliberate failure on rank 1" in done.stderr
