"""tinyllm/cli/eval.py: each source of text gives the library's figures, multiple choice from a
file and from the built-in task, and mistakes are one `error:` line."""
import dataclasses
import json
import math

import numpy as np
import pytest

from tinyllm.checkpoint import save_checkpoint
from tinyllm.choices import evaluate_choices, load_choices
from tinyllm.cli import main
from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.pipeline import PrepareOptions, prepare
from tinyllm.data.token_files import open_tokens
from tinyllm.evaluate import perplexity
from tinyllm.model import GPT
from tinyllm.tokenizer import CharTokenizer


def _save(path, tokenizer, train_cfg=None):
    """A random char model for `tokenizer`, with the run's TrainConfig if given."""
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2,
                       n_embd=16)
    model = GPT(config, np.random.default_rng(0))
    meta = {"model_config": dataclasses.asdict(config)}
    if train_cfg is not None:
        meta["train_config"] = dataclasses.asdict(train_cfg)
    save_checkpoint(path, model.state_dict(), {}, meta, tokenizer)
    return model


def _eval_json(capsys, *flags):
    main(["eval", *flags, "--json", "--no-progress"])
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def run(tmp_path, text_file):
    """(checkpoint, model, tokenizer, text) of a run trained on text_file."""
    text = text_file.read_text()
    tokenizer = CharTokenizer.from_text(text)
    cfg = TrainConfig(data=str(text_file), val_fraction=0.1)
    model = _save(tmp_path / "run.npz", tokenizer, cfg)
    return tmp_path / "run.npz", model, tokenizer, text


def test_the_default_is_the_runs_validation_split(run, capsys):
    checkpoint, model, tokenizer, text = run
    report = _eval_json(capsys, "--checkpoint", str(checkpoint))
    val_ids = tokenizer.encode(text[int(len(text) * 0.9):])
    expected = perplexity(model, tokenizer, val_ids)
    assert report["tokens"] == report["characters"] == len(val_ids) - 1
    assert report["mean_loss"] == pytest.approx(expected.mean_loss)
    assert report["perplexity"] == pytest.approx(math.exp(report["mean_loss"]))
    main(["eval", "--checkpoint", str(checkpoint), "--no-progress"])
    printed = capsys.readouterr().out
    assert "mean loss (nats per token): " in printed and "bits per character: " in printed


def test_a_text_file_with_disjoint_windows(run, tmp_path, capsys):
    checkpoint, model, tokenizer, _ = run
    (tmp_path / "other.txt").write_text("that is not the question to be\n" * 5)
    report = _eval_json(capsys, "--checkpoint", str(checkpoint), "--text",
                        str(tmp_path / "other.txt"), "--stride", "16")
    ids = tokenizer.encode("that is not the question to be\n" * 5)
    assert report["mean_loss"] == pytest.approx(
        perplexity(model, tokenizer, ids, stride=16).mean_loss)


def test_a_prepared_datasets_val_split(tmp_path, capsys):
    (tmp_path / "src.txt").write_text("\n\n".join(f"doc {i} abc" for i in range(30)))
    prepare(tmp_path / "src.txt", tmp_path / "data", "char", PrepareOptions(val_fraction=0.2),
            progress=False)
    tokenizer = CharTokenizer.load(tmp_path / "data" / "tokenizer.json")
    model = _save(tmp_path / "m.npz", tokenizer)
    report = _eval_json(capsys, "--checkpoint", str(tmp_path / "m.npz"), "--dataset",
                        str(tmp_path / "data"))
    val_ids = open_tokens(tmp_path / "data", "val")
    assert report["tokens"] == len(val_ids) - 1
    assert report["mean_loss"] == pytest.approx(
        perplexity(model, tokenizer, val_ids).mean_loss)


def test_multiple_choice_from_a_file(run, tmp_path, capsys):
    checkpoint, model, tokenizer, _ = run
    records = [{"ctx": "to be or", "endings": ["not", "the question"], "label": 0},
               {"ctx": "that", "endings": ["is", "be", "or not"], "label": 2}]
    (tmp_path / "items.jsonl").write_text("\n".join(map(json.dumps, records)))
    report = _eval_json(capsys, "--checkpoint", str(checkpoint), "--choices",
                        str(tmp_path / "items.jsonl"))
    expected = evaluate_choices(model, tokenizer, load_choices(tmp_path / "items.jsonl"))
    assert report == {"choices": str(tmp_path / "items.jsonl"), **expected.as_dict()}
    assert report["items"] == 2


def test_the_built_in_next_line_task(run, tmp_path, capsys):
    lines = ["to be or not", "that is the q", "or not to be", "be", "the question",
             "not to be or"] * 20  # lines of 12 or 13 characters fit block 16 with context
    (tmp_path / "play.txt").write_text("\n".join(lines))
    flags = ["--checkpoint", str(run[0]), "--choices", "shakespeare-next-line",
             "--text", str(tmp_path / "play.txt"), "--num-items", "5", "--seed", "1"]
    report = _eval_json(capsys, *flags)
    assert report["items"] == 5 and report == _eval_json(capsys, *flags)


@pytest.mark.parametrize("flags, message", [
    ([], "no training data"),  # the checkpoint records no TrainConfig
    (["--text", "{bad}"], r"'Z' \(U\+005A\) at position 2"),
    (["--text", "{good}", "--stride", "0"], "stride must be in"),
    (["--choices", "{missing}"], "missing.jsonl"),
    (["--num-items", "0", "--choices", "shakespeare-next-line"], "--num-items"),
])
def test_mistakes_are_one_clear_line(tiny_checkpoint, tmp_path, flags, message):
    (tmp_path / "bad.txt").write_text("abZc")
    (tmp_path / "good.txt").write_text("abc abc")
    paths = {"bad": tmp_path / "bad.txt", "good": tmp_path / "good.txt",
             "missing": tmp_path / "missing.jsonl"}
    flags = [f.format(**paths) for f in flags]
    with pytest.raises(SystemExit, match=message):
        main(["eval", "--checkpoint", str(tiny_checkpoint()), "--no-progress", *flags])
