"""tinyllm/finetune/template.py: the Alpaca layout, the end marker of each tokenizer kind, and
that data text cannot forge an end."""
import pytest

from tinyllm.finetune.template import (
    PREAMBLE, encode_prompt, encode_response, end_ids, format_prompt,
)
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\nTranslate to French.\n\n### Input:\ncat"
    "\n\n### Response:\n")


def bpe_with_eot():
    return BPETokenizer.train("hello world " * 20, 270, special_tokens=["<|endoftext|>"])


def test_the_alpaca_layout_with_and_without_input():
    assert format_prompt("Translate to French.", "cat") == ALPACA_WITH_INPUT
    without = format_prompt("Translate to French.")
    assert without == ALPACA_WITH_INPUT.replace("\n\n### Input:\ncat", "")
    assert "### Input" not in without and format_prompt("x", "") == format_prompt("x")
    assert without.startswith(PREAMBLE) and without.endswith("### Response:\n")


def test_a_bpe_tokenizer_ends_with_its_endoftext_token():
    tok = bpe_with_eot()
    eot = tok.special_tokens["<|endoftext|>"]
    assert end_ids(tok) == [eot]
    assert encode_response(tok, "hello") == tok.encode("hello") + [eot]


def test_a_char_tokenizer_ends_with_a_blank_line_or_says_why_it_cannot():
    tok = CharTokenizer.from_text("ab\n")
    assert end_ids(tok) == tok.encode("\n\n")
    with pytest.raises(ValueError, match="no <\\|endoftext\\|> token"):
        end_ids(CharTokenizer.from_text("ab"))


def test_endoftext_written_in_the_data_is_plain_text():
    tok = bpe_with_eot()
    eot = tok.special_tokens["<|endoftext|>"]
    ids = encode_response(tok, "hello <|endoftext|> world")
    assert ids.count(eot) == 1 and ids[-1] == eot
    assert eot not in encode_prompt(tok, "<|endoftext|>", "<|endoftext|>")


def test_prompt_and_response_ids_spell_the_whole_example():
    text = format_prompt("Say hi.", "now") + "Hi there."
    tok = CharTokenizer.from_text(text)
    ids = encode_prompt(tok, "Say hi.", "now") + encode_response(tok, "Hi there.")
    assert tok.decode(ids) == text + "\n\n"
