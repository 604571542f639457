"""Chatting with an instruction-tuned model: each message is an instruction, each answer streams.

A turn is the prompt template (template.py) with the message as the instruction and no input;
the model answers by continuing it, token by token (generate.py, with the KV cache), until it
produces the end marker it was fine-tuned to end answers with, or runs out of new tokens.
Earlier turns go before the new one, each as a complete training example (prompt, answer, end
marker), newest kept first: the oldest are dropped once they no longer fit in the context
(block_size positions), leaving room for the answer. The model was tuned on single turns, so
whether it makes use of the history is up to it; nothing else is assumed.

The answer is streamed as text. Two things are held back until the next token decides them:
- the start of a multi-token end marker (a character model's "\\n\\n": one "\\n" may be the
  start of the end, or just a line break), so the marker itself is never shown;
- the bytes of a UTF-8 character that a byte-level BPE token left unfinished.

Shapes: T prompt length (1, T) as generate takes it.
Left out: system prompts, roles, and stop strings other than the end marker.
"""
import numpy as np

from tinyllm.finetune.template import encode_prompt, encode_response, end_ids
from tinyllm.generate import generate, text_decoder


class ChatError(ValueError):
    """A message the model cannot take: too long for its context, or not encodable."""


def format_turn(tokenizer, history, message, block_size, reserve=0):
    """The prompt ids (a list) for `message` after `history`, a list of (message, answer)
    pairs, oldest first. Earlier turns are kept, newest first, while the whole stays within
    block_size - reserve tokens; the new turn alone must leave at least one position free.

    >>> from tinyllm.finetune.template import format_prompt
    >>> from tinyllm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.from_text(format_prompt("Hi?") + "0123456789")
    >>> len(format_turn(tok, [], "Hi?", 256)), len(format_turn(tok, [("Hi?", "0")], "Hi?", 300))
    (143, 289)
    >>> len(format_turn(tok, [("Hi?", "0")], "Hi?", 256))  # no room for the earlier turn
    143
    """
    try:
        turn = encode_prompt(tokenizer, message)
    except ValueError as e:  # a character tokenizer meeting a character it never saw
        raise ChatError(f"the message cannot be encoded: {e}") from None
    if len(turn) >= block_size:
        raise ChatError(f"the message makes a prompt of {len(turn)} tokens, and the model's "
                        f"context holds {block_size}: shorten it")
    ids = turn
    for past_message, answer in reversed(history):
        past = encode_prompt(tokenizer, past_message) + encode_response(tokenizer, answer)
        if len(past) + len(ids) > block_size - reserve:
            break
        ids = past + ids
    return ids


def respond(model, tokenizer, history, message, max_new_tokens=256, temperature=0.8,
            top_k=None, top_p=None, rng=None):
    """Yield the answer to `message` (after `history`, see format_turn) as pieces of text.

    Sampling as in generate.generate. The prompt keeps room for min(max_new_tokens,
    block_size / 2) answer tokens; a longer answer slides the KV cache's window. The caller
    appends (message, "".join(pieces)) to its history for the next turn, e.g.
    `answer = "".join(respond(model, tokenizer, [], "Name a colour.", temperature=0))`.
    """
    block = model.config.block_size
    prompt = format_turn(tokenizer, history, message, block, min(max_new_tokens, block // 2))
    tokens = generate(model, np.array([prompt]), max_new_tokens, temperature, top_k, top_p, rng)
    yield from stream_text(tokenizer, (int(t[0]) for t in tokens), end_ids(tokenizer))


def stream_text(tokenizer, ids, end):
    """Yield the text of the token ids in `ids` (an iterable) as they arrive, stopping before
    the first occurrence of the id sequence `end` (which is not shown).

    >>> from tinyllm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.from_text("ab\\n")
    >>> list(stream_text(tok, tok.encode("a\\nb\\n\\nab"), tok.encode("\\n\\n")))
    ['a', '\\nb']
    """
    decode, pending = text_decoder(tokenizer), []  # pending: ids that may begin the end marker
    for i in ids:
        pending.append(i)
        if pending[-len(end):] == end:
            pending = pending[:-len(end)]
            break
        held = _marker_start(pending, end)
        text = decode(pending[:len(pending) - held])
        pending = pending[len(pending) - held:]
        if text:
            yield text
    text = decode(pending, final=True)  # what was held back, if the marker never completed
    if text:
        yield text


def _marker_start(ids, end):
    """The length of the longest end of `ids` that is a proper beginning of `end`.

    >>> _marker_start([5, 1, 2], [1, 2, 3]), _marker_start([5, 1, 2], [1, 3])
    (2, 0)
    """
    for k in range(min(len(ids), len(end) - 1), 0, -1):
        if ids[-k:] == end[:k]:
            return k
    return 0
