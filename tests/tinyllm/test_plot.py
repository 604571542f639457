"""tinyllm/plot.py: a run folder's logs read into continuous, clean series (a resumed segment,
a torn line, values of the wrong type), the two pictures written as PNGs, and a clear message
when matplotlib is missing."""
import json
import sys

import numpy as np
import pytest

from tinyllm import plot
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.plot import PlotError, plot_attention, plot_training, read_curves, token_label
from tinyllm.tokenizer import CharTokenizer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_jsonl(path, records, torn=""):
    """Records as JSON lines (strings are written as they are), then an unfinished line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines) + torn)


def step_record(i, segment):
    """Segment 2 (the resumed run) logs losses 0.5 higher, so the test can tell who wrote what."""
    return {"iter": i, "loss": 3.0 - 0.05 * i + 0.5 * (segment - 1), "lr": 1e-3,
            "tokens": 768 * (i + 1), "elapsed_s": 0.1 * (i + 1)}


def eval_record(i, segment):
    return {"iter": i, "lr": 1e-3, "elapsed_s": 0.1 * i, "tokens": 768 * i,
            "train_loss": 3.0 - 0.05 * i + 0.5 * (segment - 1), "val_loss": 3.1 - 0.04 * i}


def make_run(out):
    """A run that crashed at step 15 (torn last lines, checkpoint at 10) and was resumed from
    step 10 to 30 without the logs having been trimmed: the hard case for continuity."""
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "steps.jsonl", [step_record(i, 1) for i in range(15)],
                torn='{"iter": 15, "lo')
    write_jsonl(out / "log.jsonl", [eval_record(0, 1), eval_record(10, 1)], torn='{"iter": 2')
    write_jsonl(out / "steps.jsonl", ["\n" + json.dumps(step_record(10, 2))]
                + [step_record(i, 2) for i in range(11, 30)])
    write_jsonl(out / "log.jsonl", ["\n" + json.dumps(eval_record(10, 2))]
                + [eval_record(i, 2) for i in (20, 30)])
    return out


def test_a_resumed_run_reads_as_one_continuous_series(tmp_path):
    curves = read_curves(make_run(tmp_path / "run"))
    iters, loss = curves.steps["loss"]
    np.testing.assert_array_equal(iters, np.arange(30))
    expected = [step_record(i, 1 if i < 10 else 2)["loss"] for i in range(30)]
    np.testing.assert_allclose(loss, expected)  # the resumed segment replaced steps 10..14
    iters, train_loss = curves.evals["train_loss"]
    np.testing.assert_array_equal(iters, [0, 10, 20, 30])
    np.testing.assert_allclose(train_loss, [3.0, 3.0, 2.5, 2.0])  # step 10 from segment 2
    assert set(curves.evals) == {"lr", "elapsed_s", "tokens", "train_loss", "val_loss"}
    assert set(curves.steps) == {"loss", "lr", "tokens", "elapsed_s"}


def test_values_of_the_wrong_type_or_not_finite_are_left_out(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [
        '{"iter": 0, "val_loss": 4.0, "lr": NaN}', '{"iter": 1, "val_loss": Infinity}',
        '{"iter": 2, "val_loss": "2.0", "lr": true}', '{"iter": 3, "val_loss": 1e999}',
        '{"iter": true, "val_loss": 9.0}', '{"iter": -4, "val_loss": 9.0}',
        '{"iter": 4.0, "val_loss": 9.0}', '[5, 9.0]', '"iter"', '{"val_loss": 9.0}',
        '{"iter": 5, "val_loss": 3.5, "lr": 10' + "0" * 400 + '}',
        '{"iter": 6, "val_loss": 3.0, "note": {"nested": [1]}}',
    ])
    evals = read_curves(tmp_path).evals
    assert set(evals) == {"val_loss"}
    np.testing.assert_array_equal(evals["val_loss"][0], [0, 5, 6])
    np.testing.assert_array_equal(evals["val_loss"][1], [4.0, 3.5, 3.0])


def test_an_oversized_log_is_refused(tmp_path, monkeypatch):
    make_run(tmp_path)
    monkeypatch.setattr(plot, "MAX_LOG_BYTES", 1000)
    with pytest.raises(PlotError, match="more than a run's log"):
        read_curves(tmp_path)


def test_loss_png_is_written_into_the_run_folder(tmp_path):
    pytest.importorskip("matplotlib")
    run = make_run(tmp_path / "run")
    path = plot_training(run)
    assert path == run / "loss.png"
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size < 200_000


def test_an_old_run_with_only_an_eval_log_and_no_tokens_still_plots(tmp_path):
    pytest.importorskip("matplotlib")
    write_jsonl(tmp_path / "log.jsonl", [{"iter": i, "train_loss": 4.0 - i / 100,
                                          "val_loss": 4.1 - i / 100} for i in (0, 50, 100)])
    path = plot_training(tmp_path, tmp_path / "elsewhere.png")
    assert path == tmp_path / "elsewhere.png" and path.read_bytes().startswith(PNG_MAGIC)


def test_a_folder_without_losses_is_a_clear_error(tmp_path):
    pytest.importorskip("matplotlib")
    write_jsonl(tmp_path / "log.jsonl", [{"iter": 0, "lr": 1e-3}], torn='{"iter": 1, "val_')
    with pytest.raises(PlotError, match="no loss values"):
        plot_training(tmp_path)
    assert not (tmp_path / "loss.png").exists()


def tiny_model_and_tokenizer():
    tokenizer = CharTokenizer.from_text("ROMEO:\nWhat light $x$ breaks?\t")
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=3,
                       n_embd=12, pos="rope")
    return GPT(config, np.random.default_rng(0)).eval(), tokenizer


def test_attention_png_is_a_picture_of_the_grid(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    model, tokenizer = tiny_model_and_tokenizer()
    path = plot_attention(model, tokenizer, "ROMEO:\nWhat $x$ light", tmp_path / "attn.png")
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size < 200_000
    pixels = image.imread(path)  # (height, width, 4)
    assert pixels.shape[1] > pixels.shape[0]  # 2 layers down, 3 heads across: wider than tall
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_the_prompt_is_cut_to_max_tokens_and_must_not_be_empty(tmp_path):
    pytest.importorskip("matplotlib")
    model, tokenizer = tiny_model_and_tokenizer()
    long_prompt = "What light breaks? " * 5  # 95 characters > block_size 16: cut, not refused
    assert plot_attention(model, tokenizer, long_prompt, tmp_path / "a.png", max_tokens=40)
    with pytest.raises(PlotError, match="prompt is empty"):
        plot_attention(model, tokenizer, "", tmp_path / "b.png")


def test_token_labels_make_whitespace_visible():
    assert token_label("\n") == "\\n"
    assert token_label(" to\tbe\r") == "␣to\\tbe\\r"
    assert token_label("\x00é") == "\\x00é"  # printable non-ASCII stays as it is


def test_without_matplotlib_the_message_names_the_extra(tmp_path, monkeypatch):
    make_run(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    message = "plotting needs matplotlib: pip install 'tinyllm[plot]'"
    with pytest.raises(PlotError) as error:
        plot_training(tmp_path)
    assert str(error.value) == message
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.raises(PlotError, match="pip install 'tinyllm"):
        plot_attention(model, tokenizer, "ROMEO:", tmp_path / "attn.png")
