"""tinyllm/finetune/chat.py: history kept within the context, newest turns first; answers
stream without the end marker and stop at it; byte-level tokens split inside a character
come out whole."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.finetune import chat
from tinyllm.finetune.chat import ChatError, format_turn, respond, stream_text
from tinyllm.finetune.template import encode_prompt, encode_response
from tinyllm.generate import generate
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

from .helpers import char_tokenizer, tiny_gpt


def example_ids(tok, message, answer):
    return encode_prompt(tok, message) + encode_response(tok, answer)


def test_history_keeps_the_newest_turns_that_fit():
    tok = char_tokenizer()
    history = [("Say hi.", "Hi."), ("Add 2 and 3.", "5"), ("Is ice cold?", "Yes.")]
    turn = encode_prompt(tok, "Name a colour.")
    assert format_turn(tok, [], "Name a colour.", 200) == turn
    everything = sum((example_ids(tok, m, a) for m, a in history), []) + turn
    assert format_turn(tok, history, "Name a colour.", len(everything)) == everything
    newest_two = everything[len(example_ids(tok, *history[0])):]
    assert format_turn(tok, history, "Name a colour.", len(everything) - 1) == newest_two
    assert format_turn(tok, history, "Name a colour.", len(everything), reserve=1) == newest_two


def test_a_message_too_long_or_unencodable_is_a_chat_error():
    tok = char_tokenizer()
    n = len(encode_prompt(tok, "Say hi."))
    assert len(format_turn(tok, [], "Say hi.", n + 1)) == n
    with pytest.raises(ChatError, match=f"prompt of {n} tokens.*holds {n}"):
        format_turn(tok, [], "Say hi.", n)
    with pytest.raises(ChatError, match="cannot be encoded: character 'Ç'"):
        format_turn(tok, [], "Ça va?", 200)


class Recorded:
    """An iterator over ids that counts how many were taken."""

    def __init__(self, ids):
        self.ids, self.taken = list(ids), 0

    def __iter__(self):
        for i in self.ids:
            self.taken += 1
            yield i


@given(ids=st.lists(st.integers(0, 3), max_size=12),
       end=st.lists(st.integers(0, 3), min_size=1, max_size=3))
def test_streaming_stops_at_the_first_end_marker_and_hides_it(ids, end):
    tok = CharTokenizer.from_text("ab\nc")
    stop = next((i for i in range(len(ids)) if ids[i:i + len(end)] == end), None)
    source = Recorded(ids)
    pieces = list(stream_text(tok, source, end))
    assert "".join(pieces) == tok.decode(ids if stop is None else ids[:stop])
    assert source.taken == (len(ids) if stop is None else stop + len(end))
    assert all(pieces)


def test_a_character_split_across_byte_tokens_streams_whole():
    tok = BPETokenizer.train("abc", 257, special_tokens=["<|endoftext|>"])  # bytes and 1 id
    text = "héllo wörld ✓"
    ids = list(text.encode("utf-8")) + tok.encode("<|endoftext|>", allowed_special="all")
    pieces = list(stream_text(tok, ids + [104], [256]))
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    assert "é" in pieces and "✓" in pieces[-1]


def test_respond_stops_taking_tokens_at_the_end(monkeypatch):
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size)
    answer = tok.encode("Red.\n\nBlue")
    source = Recorded(np.array([i]) for i in answer)

    def fake_generate(model_, idx, max_new_tokens, *sampling):
        assert (idx[0] == encode_prompt(tok, "Name a colour.")).all()
        assert max_new_tokens == 40
        return iter(source)

    monkeypatch.setattr(chat, "generate", fake_generate)
    assert "".join(respond(model, tok, [], "Name a colour.", max_new_tokens=40)) == "Red."
    assert source.taken == 6


def test_respond_is_the_greedy_continuation_cut_at_the_end():
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size, seed=3)
    prompt = format_turn(tok, [("Say hi.", "Hi.")], "Spell it.", 192, reserve=30)
    tokens = [int(t[0]) for t in generate(model, np.array([prompt]), 30, temperature=0)]
    text = tok.decode(tokens).split("\n\n")[0]
    got = "".join(respond(model, tok, [("Say hi.", "Hi.")], "Spell it.", 30, temperature=0))
    assert got == text
