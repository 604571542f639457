"""Tokenizers: text <-> integer ids.

Read char.py first, then pretokenize.py, bpe_train.py, bpe_encode.py and bpe.py; after them
pretokenize_fast.py (the split patterns compiled by hand), tiktoken_files.py and json_file.py.

Every loader raises TokenizerError (a ValueError, from json_file.py) for a malformed file.
"""
from .bpe import BPETokenizer
from .char import CharTokenizer
from .json_file import TokenizerError, read_json

TOKENIZERS = {"CharTokenizer": CharTokenizer, "BPETokenizer": BPETokenizer}  # by class name


def load_any(path):
    """Whichever tokenizer the file at `path` holds, chosen by the file's "format" field."""
    data = read_json(path, "a saved tokenizer")
    kind = data.get("format") if isinstance(data, dict) else None
    for cls in TOKENIZERS.values():
        if kind == cls.FORMAT:
            return cls.load(path)
    raise TokenizerError(f"{path}: not a saved CharTokenizer or BPETokenizer")


__all__ = ["BPETokenizer", "CharTokenizer", "TOKENIZERS", "TokenizerError", "load_any"]
