"""tinyllm/cli.py: `tinyllm train` end to end on the real text, `sample` (with its decoding
flags), --help, resume, errors."""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinyllm.checkpoint import save_checkpoint
from tinyllm.cli import main
from tinyllm.train import restore
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.tokenizer import CharTokenizer

needs_data = pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"),
                                reason="set TINYLLM_DATA to the Tiny Shakespeare text")
SMALL = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--batch_size", "4",
         "--eval_iters", "2", "--eval_interval", "2", "--no-progress"]


@needs_data
def test_train_then_resume_then_sample_on_tiny_shakespeare(tmp_path, capsys):
    out = str(tmp_path / "out")
    main(["train", *SMALL, "--max_iters", "3", "--sample_tokens", "20", "--out_dir", out])
    printed = capsys.readouterr().out
    assert "vocabulary 65" in printed and "--- sample ---" in printed
    main(["train", "--resume", *SMALL, "--max_iters", "5", "--sample_tokens", "0",
          "--out_dir", out])
    assert "from step 3 to 5" in capsys.readouterr().out
    steps = [json.loads(line)["iter"] for line in open(os.path.join(out, "log.jsonl"))]
    assert steps[-1] == 5
    main(["sample", "--checkpoint", out, "--prompt", "ROMEO:", "--max-new-tokens", "30",
          "--seed", "1"])
    first = capsys.readouterr().out
    main(["sample", "--checkpoint", out, "--prompt", "ROMEO:", "--max-new-tokens", "30",
          "--seed", "1"])
    assert first.startswith("ROMEO:") and len(first) > 30 and capsys.readouterr().out == first


def test_help_lists_every_field_with_the_presets_values(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "shakespeare-char", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--n_layer", "--learning_rate", "--grad_accum", "--pos", "--resume"):
        assert flag in text
    assert "(default: 384)" in text  # n_embd of that preset


def test_bad_flags_and_missing_checkpoint_fail_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--n_layer", "four"])
    assert "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main(["sample", "--checkpoint", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_prepare_then_train_on_the_token_files(tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    lines = [f'{{"text": "document {i % 7}: to be or not to be, that is the question"}}'
             for i in range(60)]
    src.write_text("\n".join(lines) + "\n")
    main(["prepare", str(src), str(tmp_path / "data"), "--tokenizer", "bpe:300", "--dedup",
          "--quiet"])
    prepared = capsys.readouterr().out
    vocab = int(re.search(r"vocabulary (\d+)", prepared).group(1))
    assert 256 < vocab <= 300  # seven distinct documents run out of pairs to merge before 300
    main(["train", *SMALL, "--block_size", "8", "--max_iters", "2", "--sample_tokens", "5",
          "--dataset", str(tmp_path / "data"), "--out_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert f"vocabulary {vocab}" in out and "--- sample ---" in out


def test_sample_with_top_p_no_cache_a_draft_and_several_samples(tmp_path, capsys):
    tokenizer = CharTokenizer.from_text("abcdefgh \n")
    for name, seed, n_layer in (("target", 0, 2), ("draft", 1, 1)):
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=n_layer,
                           n_head=2, n_embd=16)
        save_checkpoint(tmp_path / f"{name}.npz", GPT(config, np.random.default_rng(seed))
                        .state_dict(), {}, {"model_config": dataclasses.asdict(config)}, tokenizer)
    greedy = ["sample", "--checkpoint", str(tmp_path / "target.npz"), "--prompt", "ab",
              "--max-new-tokens", "14", "--temperature", "0"]  # 2 + 14 tokens fit block 16
    outputs = []
    for extra in ([], ["--no-cache"], ["--draft", str(tmp_path / "draft.npz")]):
        main(greedy + extra)
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]) == 2 + 14 + 1
    main(greedy[:-2] + ["--top-p", "0.9", "--num-samples", "2"])
    samples = capsys.readouterr().out.split("---------------\n")
    assert len(samples) == 2 and all(s.startswith("ab") and len(s) == 17 for s in samples)


@needs_data
def test_ctrl_c_saves_and_exits_cleanly_then_resumes(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tinyllm.cli", "train", *SMALL, "--max_iters", "100000",
               "--eval_interval", "1000", "--sample_tokens", "0", "--out_dir", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first evaluation has been printed: training is under way
        if line.startswith("step 0:"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert "stopped at step" in rest
    step = int(rest.split("stopped at step ")[1].split(";")[0])
    assert step > 0 and restore(out / "ckpt.npz").step == step
