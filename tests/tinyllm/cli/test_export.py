"""tinyllm/cli/export.py: a BPE checkpoint becomes a GPT-2 folder computing the same logits;
what GPT-2 cannot hold is a one-line error."""
import dataclasses

import numpy as np
import pytest

from autograd import no_grad
from tinyllm.checkpoint import save_checkpoint
from tinyllm.cli import main
from tinyllm.config import GPTConfig
from tinyllm.hf import load_gpt2
from tinyllm.load import load_model
from tinyllm.model import GPT
from tinyllm.tokenizer import BPETokenizer

TOK = BPETokenizer.train("to be or not to be, that is the question " * 20, 280,
                         special_tokens=["<|endoftext|>"])


def bpe_checkpoint(path, **changes):
    config = GPTConfig(vocab_size=TOK.vocab_size, block_size=16, n_layer=1, n_head=2,
                       n_embd=16, **changes)
    save_checkpoint(path, GPT(config, np.random.default_rng(0)).state_dict(), {},
                    {"model_config": dataclasses.asdict(config)}, TOK)
    return path


def logits(model, ids):
    with no_grad():
        return model(np.array([ids]))[0].data


@pytest.mark.parametrize("how", ["flag", "positional"])
def test_export_writes_a_folder_with_the_same_model(tmp_path, capsys, how):
    checkpoint = bpe_checkpoint(tmp_path / "model.npz")
    where = ["--checkpoint", str(checkpoint)] if how == "flag" else [str(checkpoint)]
    main(["export", *where, "--hf", str(tmp_path / "hf")])
    assert f"wrote {tmp_path / 'hf'}" in capsys.readouterr().out
    ours, tok, _ = load_model(checkpoint)
    theirs, hf_tok = load_gpt2(tmp_path / "hf")
    ids = tok.encode("to be or not")
    assert hf_tok.encode("to be or not") == ids
    np.testing.assert_array_equal(logits(theirs, ids), logits(ours, ids))


def test_what_gpt2_cannot_hold_is_a_one_line_error(tmp_path, tiny_checkpoint):
    with pytest.raises(SystemExit, match="^error: the tokenizer is a CharTokenizer"):
        main(["export", str(tiny_checkpoint()), "--hf", str(tmp_path / "hf")])
    rope = bpe_checkpoint(tmp_path / "rope.npz", pos="rope")
    with pytest.raises(SystemExit, match="^error: GPTConfig.pos='rope'"):
        main(["export", "--checkpoint", str(rope), "--hf", str(tmp_path / "hf")])


def test_the_checkpoint_is_given_once(tmp_path):
    with pytest.raises(SystemExit, match="give the checkpoint once"):
        main(["export", "a.npz", "--checkpoint", "b.npz", "--hf", str(tmp_path)])
