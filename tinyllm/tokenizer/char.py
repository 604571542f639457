"""The simplest tokenizer: one token per character.

A character-level model (Karpathy's char-rnn, nanoGPT's shakespeare_char) needs no training at
all: the vocabulary is the sorted set of characters in the text, and a token id is a position in
that list. Sorting makes the vocabulary, and so every id, depend only on which characters occur,
never on their order in the text. The price is long sequences (one step per character) and a
model that cannot spell a character it never saw.

Leaves out: an "unknown" token. A character outside the vocabulary is an error that names the
character and its position, because silently mapping it to <unk> hides data problems.
Lone surrogates (U+D800..U+DFFF) are not characters UTF-8 can store, so they cannot be in the
vocabulary either: its file could not be written.
"""
from .json_file import TokenizerError, read_versioned, write_versioned

_FORMAT = "tinyllm-char"
_VERSION = 1


class CharTokenizer:
    """Map each character of a fixed vocabulary to its index in the sorted vocabulary.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.chars
    ['e', 'h', 'l', 'o']
    >>> tok.encode("hole")
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    """

    FORMAT = _FORMAT

    def __init__(self, chars):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1
               or 0xD800 <= ord(c) <= 0xDFFF]
        if bad:
            raise TokenizerError(f"vocabulary entry {repr(bad[0])[:40]} is not a single "
                                 "character (lone surrogates excluded)")
        if len(set(chars)) != len(chars):
            raise TokenizerError("the vocabulary has a repeated character")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}  # character -> id

    @classmethod
    def from_text(cls, text):
        """Build the vocabulary from the sorted unique characters of `text`.

        >>> CharTokenizer.from_text("banana").chars
        ['a', 'b', 'n']
        """
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        """The number of distinct characters: ids run from 0 to vocab_size - 1."""
        return len(self.chars)

    def encode(self, text):
        """Turn a string into a list of ids; an unknown character raises ValueError.

        >>> CharTokenizer.from_text("ab").encode("abba")
        [0, 1, 1, 0]
        """
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise ValueError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} "
                "is not in the vocabulary"
            ) from None

    def decode(self, ids):
        """Turn a list of ids back into the string; an id out of range raises ValueError.

        >>> CharTokenizer.from_text("ab").decode([1, 0])
        'ba'
        """
        n = len(self.chars)
        bad = next((i for i in ids if not 0 <= i < n), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside the vocabulary 0..{n - 1}")
        return "".join(self.chars[i] for i in ids)

    def save(self, path):
        """Write the vocabulary as versioned JSON, one character a line.

        The file reads `{"format": "tinyllm-char", "version": 1,` then `"chars": [`, `"\\n"`,
        `" "`, `"!"`, ... and `]}`.
        """
        write_versioned(path, _FORMAT, _VERSION, {"chars": self.chars}, list_field="chars")

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; a wrong or corrupt file raises TokenizerError."""
        data = read_versioned(path, _FORMAT, _VERSION)
        if not isinstance(data.get("chars"), list):
            raise TokenizerError(f"{path}: corrupt {_FORMAT} file, no 'chars' list")
        try:
            return cls(data["chars"])
        except TokenizerError as e:
            raise TokenizerError(f"{path}: corrupt {_FORMAT} file: {e}") from None
