"""tinyllm/cli/sft.py, dpo.py and finetune.py: instruction and preference tuning end to end on
tiny models, full and LoRA, exact resume, adapters alone, then chat with the result."""
import dataclasses
import json

import numpy as np
import pytest

from tests.tinyllm.finetune.helpers import EXAMPLES, PREFERENCES, char_tokenizer, tiny_gpt
from tinyllm.checkpoint import CheckpointError, save_checkpoint
from tinyllm.cli import main
from tinyllm.load import load_model
from tinyllm.train import restore

FAST = ["--batch-size", "2", "--eval-interval", "2", "--no-progress"]


@pytest.fixture
def files(tmp_path):
    """A base checkpoint over a char tokenizer, and instruction and preference files of 40
    records each (an 85/5/10 split leaves 2 for validation)."""
    tokenizer = char_tokenizer()
    model = tiny_gpt(tokenizer.vocab_size)
    save_checkpoint(tmp_path / "base.npz", model.state_dict(), {},
                    {"model_config": dataclasses.asdict(model.config)}, tokenizer)
    for name, records in (("sft.json", EXAMPLES), ("dpo.json", PREFERENCES)):
        (tmp_path / name).write_text(json.dumps([vars(r) for r in records] * 7))
    return tmp_path


def log(out):
    return [json.loads(line) for line in open(out / "log.jsonl")]


def sft(files, out, *extra):
    main(["sft", "--init", str(files / "base.npz"), "--data", str(files / "sft.json"),
          "--out-dir", str(files / out), *FAST, *extra])


def test_sft_logs_the_response_loss_and_resumes_exactly(files, capsys):
    sft(files, "straight", "--max-iters", "4")
    sft(files, "cut", "--max-iters", "2")
    main(["sft", "--resume", "--out-dir", str(files / "cut"), "--max-iters", "4",
          "--no-progress"])
    assert "train / 2 val examples" in capsys.readouterr().out
    straight, cut = log(files / "straight"), log(files / "cut")
    assert [r["iter"] for r in straight] == [0, 2, 4] and "val_loss" in straight[0]
    assert [r["val_loss"] for r in cut] == [r["val_loss"] for r in straight]
    assert restore(files / "cut" / "ckpt.npz").task_meta["kind"] == "sft"


def test_lora_trains_adapters_only_and_saves_them_apart(files, capsys):
    sft(files, "lora", "--max-iters", "3", "--lora-rank", "2", "--learning-rate", "1e-2")
    # r (in + out) for attn.c_attn 16->48, attn.c_proj 16->16 and mlp.c_proj 64->16
    assert "(352 trained)" in capsys.readouterr().out
    base, _, _ = load_model(files / "base.npz")
    run = restore(files / "lora" / "ckpt.npz")
    tuned = run.model.state_dict()
    for name, array in base.state_dict().items():  # every base weight bit-identical
        np.testing.assert_array_equal(tuned[name], array)
    assert np.abs(tuned["transformer.h.0.attn.c_attn.lora_B"]).max() > 0
    merged, _, _ = load_model(files / "lora")  # the adapted model, for sampling or chat
    with pytest.raises(CheckpointError, match="pass that model as --base"):
        load_model(files / "lora" / "adapter.npz")  # a path in the file is not followed
    from_adapter, _, _ = load_model(files / "lora" / "adapter.npz", files / "base.npz")
    ids = np.array([[1, 2, 3, 4]])
    expected = run.model.eval()(ids)[0].data
    for model in (merged, from_adapter):
        np.testing.assert_allclose(model(ids)[0].data, expected, rtol=1e-5, atol=1e-6)
    assert (files / "lora" / "adapter.npz").stat().st_size < 0.5 * (
        files / "lora" / "ckpt.npz").stat().st_size


def test_dpo_logs_reward_accuracy_and_starts_at_ln2(files):
    main(["dpo", "--init", str(files / "base.npz"), "--data", str(files / "dpo.json"),
          "--out-dir", str(files / "dpo"), "--max-iters", "2", *FAST])
    records = log(files / "dpo")
    assert records[0]["val_loss"] == pytest.approx(np.log(2), abs=1e-6)
    assert records[0]["val_reward_accuracy"] == 0.0 and "train_margin" in records[-1]


def test_chat_answers_from_a_fine_tuned_run(files, capsys):
    sft(files, "lora", "--max-iters", "1", "--lora-rank", "2")
    capsys.readouterr()
    main(["chat", "--checkpoint", str(files / "lora"), "--prompt", "Say hi.",
          "--max-new-tokens", "5", "--temperature", "0"])
    assert capsys.readouterr().out.strip() != ""


@pytest.mark.parametrize("flags, message", [
    ([], "needs --init"),
    (["--init", "BASE", "--lora-rank", "-1"], "--lora-rank must be in"),
    (["--init", "BASE", "--lora-rank", "2", "--lora-targets", "wte"], "--lora-targets wte"),
])
def test_mistakes_are_one_line(files, flags, message):
    flags = [str(files / "base.npz") if f == "BASE" else f for f in flags]
    with pytest.raises(SystemExit, match=message):
        main(["sft", "--data", str(files / "sft.json"), "--out-dir", str(files / "x"), *flags])


@pytest.mark.parametrize("command", ["sft", "dpo"])
@pytest.mark.parametrize("flag", ["--dataset", "--val-fraction", "--eval-iters", "--sample-tokens"])
def test_pretraining_only_fields_are_refused_not_ignored(command, flag, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert flag not in capsys.readouterr().out
    with pytest.raises(SystemExit, match=f"unrecognized arguments: {flag} 1"):
        main([command, "--init", "x", flag, "1"])
