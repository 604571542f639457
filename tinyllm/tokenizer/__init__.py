"""Tokenizers: text <-> integer ids.

Read char.py first, then pretokenize.py, bpe_train.py, bpe_encode.py and bpe.py; after them
pretokenize_fast.py (the split patterns compiled by hand), tiktoken_files.py and json_file.py.
"""
from .bpe import BPETokenizer
from .char import CharTokenizer

__all__ = ["BPETokenizer", "CharTokenizer"]
