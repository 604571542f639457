"""The examples run as the README and their docstrings say (smallest settings that still show
the point)."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import load_checkpoint, save_checkpoint
from tinyllm.config import GPTConfig
from tinyllm.generate import generate
from tinyllm.model import GPT
from tinyllm.speculative import speculative_generate
from tinyllm.tokenizer import CharTokenizer
from tests.tinyllm.test_plot import make_run

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(script, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_micrograd_style_mlp_learns_the_spiral():
    out = run("01_micrograd_style.py")
    last = [line for line in out.splitlines() if line.startswith("step")][-1]
    assert float(last.split("accuracy")[1].strip().rstrip("%")) > 80.0
    assert "gradcheck: backward agrees" in out


@pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"), reason="needs TINYLLM_DATA")
def test_train_bpe_prints_merges_and_compression():
    out = run("02_train_bpe.py", "--vocab-size", "300")
    assert "first merges:" in out and "bytes per token" in out
    assert "ROMEO: But, soft!" in out.replace("|", "")  # the line, token boundaries shown by |


@pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"), reason="needs TINYLLM_DATA")
def test_shakespeare_bpe_reports_bits_per_character(tmp_path):
    out = run("03_shakespeare_bpe.py", "--vocab-size", "300", "--max_iters", "2",
              "--eval_iters", "2", "--out", str(tmp_path))
    bits = float(out.split("nats/token = ")[1].split(" bits/char")[0])
    assert 0.5 < bits < 8.0  # log2(300) / (chars per token) bounds an untrained model
    last = json.loads((tmp_path / "model" / "log.jsonl").read_text().splitlines()[-1])
    assert f"val loss {last['val_loss']:.4f} nats/token" in out  # one model, one val loss


def test_distil_draft_writes_a_draft_that_speculative_decoding_takes(tmp_path):
    words = np.random.default_rng(0).choice(["to be", "or not", "that is", "the question"], 3000)
    text = tmp_path / "text.txt"
    text.write_text(" ".join(words) + "\n")
    tokenizer = CharTokenizer.from_text(text.read_text())
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2,
                       n_embd=16)
    target = GPT(config, np.random.default_rng(0))
    save_checkpoint(tmp_path / "target.npz", target.state_dict(), {},
                    {"model_config": dataclasses.asdict(config)}, tokenizer)

    out = run("04_distil_draft.py", "--target", str(tmp_path / "target.npz"), "--data",
              str(text), "--iters", "3", "--batch-size", "2", "--out", str(tmp_path / "d.npz"))
    assert "greedy agreement with the target" in out
    state, _, meta, saved_tokenizer = load_checkpoint(tmp_path / "d.npz")
    draft = GPT(GPTConfig(**meta["model_config"]))
    draft.load_state_dict(state)
    assert saved_tokenizer.vocab_size == tokenizer.vocab_size
    idx = np.array([tokenizer.encode("to be")])
    plain = [int(t[0]) for t in generate(target.eval(), idx, 12, 0)]
    fast = [int(t[0]) for t in speculative_generate(target, draft.eval(), idx, 12, k=3,
                                                    temperature=0)]
    assert fast == plain


def test_plots_draws_both_readme_pictures_of_an_existing_run(tmp_path):
    pytest.importorskip("matplotlib")
    run_dir = make_run(tmp_path / "run")  # logs of a resumed run; a tiny model beside them
    tokenizer = CharTokenizer.from_text("ROMEO:\nBut, soft! what light")
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2,
                       n_embd=16)
    save_checkpoint(run_dir / "best.npz", GPT(config).state_dict(), {},
                    {"model_config": dataclasses.asdict(config)}, tokenizer)
    out = run("05_plots.py", "--out-dir", str(run_dir), "--docs", str(tmp_path / "docs"))
    assert "using the run" in out  # no training: the folder already holds a run
    for name in ("loss.png", "attention.png"):
        assert (tmp_path / "docs" / name).read_bytes().startswith(b"\x89PNG")
        assert f"wrote {tmp_path / 'docs' / name}" in out


FINETUNE_DATA = ("TINYLLM_DATA", "TINYLLM_INSTRUCTION_DATA", "TINYLLM_PREFERENCE_DATA")


def numbers_in(value):
    """Every int and float inside nested dicts and lists (bools left out)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers_in(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.skipif(not all(map(os.environ.get, FINETUNE_DATA)), reason="needs the data")
def test_instruction_tuning_recipe_reports_every_step(tmp_path):
    out = run("06_instruction_tuning.py", "--quick", "--out", str(tmp_path))
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"pretrain", "data", "sft", "dpo", "samples", "total_wall_s"} <= set(report)
    assert all(np.isfinite(n) for n in numbers_in(report))
    sft = report["sft"]
    for name in ("before_sft", "base", "scratch", "lora"):
        assert 0 < sft[name]["val_loss"] and 0 < sft[name]["test_loss"]
    for name in ("base", "scratch", "lora"):
        assert sft[name]["peak_rss_mb"] > 10 and sft[name]["wall_s"] > 0
    assert 0 < sft["lora"]["trained_params"] < sft["base"]["trained_params"]
    dpo = report["dpo"]
    assert dpo["before"]["val_reward_accuracy"] == 0.0  # at step 0 the policy is its reference
    assert 0 <= dpo["after"]["val_reward_accuracy"] <= 1
    assert len(report["samples"]) == 3
    assert all(isinstance(s[m], str) for s in report["samples"] for m in ("base", "sft", "dpo"))
    assert "tinyllm sft --init gpt2" in out  # the commands for a GPT-2 folder are printed
