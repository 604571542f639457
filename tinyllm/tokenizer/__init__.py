"""Tokenizers: text <-> integer ids.

Read char.py first, then pretokenize.py, bpe_train.py, bpe_encode.py and bpe.py; after them
pretokenize_fast.py (the split patterns compiled by hand), tiktoken_files.py and json_file.py.
"""
from .bpe import BPETokenizer
from .char import CharTokenizer

TOKENIZERS = {"CharTokenizer": CharTokenizer, "BPETokenizer": BPETokenizer}  # by class name


def load_any(path):
    """Whichever tokenizer the file at `path` holds; each class checks its own format header."""
    for cls in TOKENIZERS.values():
        try:
            return cls.load(path)
        except (ValueError, KeyError):
            continue
    raise ValueError(f"{path}: not a saved CharTokenizer or BPETokenizer")


__all__ = ["BPETokenizer", "CharTokenizer", "TOKENIZERS", "load_any"]
