"""The training text as token ids: a folder of prepared token files, or a plain text file.

A prepared dataset (`tinyllm prepare`) is read through np.memmap, so it need not fit in memory.
A text file is encoded whole, by character, unless a tokenizer is given: continued pretraining
(`tinyllm train --init`) must read new text with the tokenizer the model was trained with, and
a character that tokenizer has no id for is an error listing every such character, unless the
user opts in to dropping them.
"""
import numpy as np

from tinyllm.checkpoint import tokenizer_bytes
from tinyllm.data.batches import split_train_val
from tinyllm.data.download import shakespeare_path
from tinyllm.data.token_files import load_tokenizer, open_tokens
from tinyllm.tokenizer import CharTokenizer


def load_data(train_cfg, tokenizer=None, drop_unknown=False):
    """(tokenizer, train ids, val ids) for `train_cfg.dataset` or `train_cfg.data`."""
    if train_cfg.dataset:
        d = train_cfg.dataset
        own = load_tokenizer(d)
        if tokenizer is not None and tokenizer_bytes(own) != tokenizer_bytes(tokenizer):
            raise ValueError(f"{d} was tokenized with another tokenizer than the model's")
        return own, open_tokens(d, "train"), open_tokens(d, "val")
    path = shakespeare_path(train_cfg.data or None)
    text = read_text(path)
    if tokenizer is None:
        tokenizer = CharTokenizer.from_text(text)
    elif isinstance(tokenizer, CharTokenizer):
        text = _known_characters(text, tokenizer, drop_unknown, path)
    ids = np.array(tokenizer.encode(text), dtype=np.int64)  # (N,)
    return (tokenizer, *split_train_val(ids, train_cfg.val_fraction))


def read_text(path):
    """A text file's contents, or a clear error if it is empty, binary or not UTF-8."""
    data = path.read_bytes()
    if b"\0" in data:
        raise ValueError(f"{path} is a binary file, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {data[e.start]:#x})") from None
    if len(text) < 2:
        raise ValueError(f"{path} holds no text to train on")
    return text


def _known_characters(text, tokenizer, drop_unknown, path):
    """`text` without the characters `tokenizer` cannot encode, if allowed; else an error."""
    unknown = sorted(set(text) - set(tokenizer.chars))
    if not unknown:
        return text
    if not drop_unknown:
        shown = " ".join(repr(c) for c in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        raise ValueError(f"{path} has {len(unknown)} character(s) the model's tokenizer "
                         f"cannot encode: {shown}; pass --drop-unknown-chars to drop them")
    drop = set(unknown)
    return "".join(c for c in text if c not in drop)
