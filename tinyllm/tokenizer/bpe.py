"""BPETokenizer: byte-level BPE as GPT-2 and tiktoken do it, with training, files and interop.

A tokenizer is four things: the split pattern (pretokenize.py), the id of each single byte
(0..255 for tokenizers trained here), the merges (a, b) -> id learned by training (bpe_train.py),
and special tokens such as "<|endoftext|>" that stand for control signals, not text. Encoding
splits out allowed special tokens, cuts the rest into chunks with the pattern, and encodes each
chunk's UTF-8 bytes with the merges (bpe_encode.py). Decoding concatenates the tokens' bytes.

Being byte-level, every Unicode string is encodable and no <unk> token exists. A decoded byte
sequence may end inside a multi-byte character (a model can emit any ids); `decode` then shows
U+FFFD instead of failing, and `decode_bytes` gives the raw bytes.

Speed: splitting and merging run as compiled loops over the whole text (pretokenize_fast.py,
bpe_encode.py), and since the same chunk ("the", " and", "\\n") recurs constantly, each chunk is
merged once per call and its repeats copied.

Files from elsewhere are checked before anything is built from them: ids must be integers in
a range the number of tokens warrants (MAX_ID_GAP), and since each merge can double a token's
length, the tokens' total size is capped (MAX_VOCAB_BYTES); any failure is a TokenizerError.

Follows: minbpe (Karpathy) for the structure and tiktoken (OpenAI) for `encode`'s handling of
special tokens and for ids doubling as merge ranks.
Leaves out: streaming decode of partial characters, and normalisation (NFC etc.): text is
encoded exactly as given.
"""
import numpy as np
import regex

from . import tiktoken_files
from .bpe_encode import encode_text, rank_table
from .bpe_train import train_fast, train_reference
from .json_file import TokenizerError, as_id, read_versioned, write_versioned
from .pretokenize import compile_pattern, resolve_pattern, split_chunks, split_special
from .pretokenize_fast import chunk_ends, code_points, has_fast_split, split_chunks_fast

_FORMAT = "tinyllm-bpe"
_VERSION = 1
MAX_ID_GAP = 1 << 16  # unused ids allowed below the largest (tiktoken's files have a few)
MAX_VOCAB_BYTES = 1 << 24  # all tokens' bytes together (100k tokens of ~7 bytes: 0.7 MB)


class BPETokenizer:
    """A byte-level BPE tokenizer; build it with `train`, `load`, `from_tiktoken` or `from_gpt2`.

    >>> tok = BPETokenizer.train("aaabdaaabac", vocab_size=259)  # Wikipedia's BPE example
    >>> tok.merges
    {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]
    >>> tok.decode([258, 100])
    'aaabd'
    """

    FORMAT = _FORMAT

    def __init__(self, merges, pattern="gpt2", special_tokens=None, byte_ids=range(256)):
        self._regex = _compile(pattern)
        self.pattern = resolve_pattern(pattern)
        self.byte_ids = [as_id(i) for i in byte_ids]
        self.merges = {(as_id(a), as_id(b)): as_id(i) for (a, b), i in merges.items()}
        self.special_tokens = {s: as_id(i) for s, i in dict(special_tokens or {}).items()}
        self.vocab = _build_vocab(self.byte_ids, self.merges, self.special_tokens)
        self._id_to_bytes = [self.vocab.get(i) for i in range(max(self.vocab) + 1)]
        self._table = None  # the compiled rank table, built on the first encode

    @property
    def vocab_size(self):
        """One more than the largest id (ids may have gaps only among special tokens)."""
        return len(self._id_to_bytes)

    # -- training -------------------------------------------------------------------------------

    @classmethod
    def train(cls, text, vocab_size, pattern="gpt2", special_tokens=(), verbose=False,
              reference=False):
        """Learn `vocab_size - 256 - len(special_tokens)` merges from `text`.

        Special tokens get the ids after the last merge, in the order given. Their text in the
        training data is cut out and not learned from. `reference=True` uses the slow textbook
        trainer (same result). Fewer merges are made if the text runs out of pairs.

        >>> BPETokenizer.train("hi hi", 258, special_tokens=["<|eot|>"]).special_tokens
        {'<|eot|>': 257}
        """
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0 or vocab_size >= 1 << 31:
            raise ValueError(f"vocab_size {vocab_size} leaves no room for 256 bytes + specials")
        code_points(text)  # fail early, with a position, on lone surrogates
        pieces = split_special(text, list(special_tokens))[::2]  # drop the specials themselves
        split = split_chunks_fast if has_fast_split(pattern) else split_chunks
        chunks = [c for piece in pieces for c in split(piece, pattern)]
        trainer = train_reference if reference else train_fast
        pairs, counts = trainer(chunks, n_merges)
        merges = {pair: 256 + k for k, pair in enumerate(pairs)}
        first_special = 256 + len(pairs)
        specials = {s: first_special + k for k, s in enumerate(special_tokens)}
        tok = cls(merges, pattern, specials)
        if verbose:
            tok._print_merges(counts)
        return tok

    def _print_merges(self, counts):
        for (a, b), count in zip(self.merges, counts):
            i = self.merges[a, b]
            print(f"merge {i - 255}/{len(counts)}: {self.vocab[a]!r} + {self.vocab[b]!r} "
                  f"-> {i} {self.vocab[i]!r} ({count} occurrences)")

    # -- encoding -------------------------------------------------------------------------------

    def encode_ordinary(self, text):
        """Encode text, treating special-token strings as plain text.

        >>> tok = BPETokenizer({})
        >>> tok.encode_ordinary("hi!")
        [104, 105, 33]
        """
        cps, ends = self._split(text)
        if self._table is None:
            self._table = rank_table(self.merges)
        return encode_text(cps, ends, self.byte_ids, self._table).tolist()

    def _split(self, text):
        # Code points (T,) and chunk ends (K,). The built-in patterns have a compiled splitter;
        # any other goes through the regex, whose chunks need not cover the text (joining them
        # drops what the pattern skipped, as tiktoken does).
        if has_fast_split(self.pattern):
            cps = code_points(text)
            return cps, chunk_ends(cps, self.pattern)
        chunks = self._regex.findall(text)
        ends = np.cumsum([len(c) for c in chunks], dtype=np.int64)  # K
        return code_points("".join(chunks)), ends

    def encode(self, text, allowed_special="none_raise"):
        """Encode text; what happens to special-token strings in it follows `allowed_special`.

        "none_raise" (default): any special-token text raises ValueError, as tiktoken does;
        "all": each becomes its special id; "none": encoded as ordinary text; a set of strings:
        those become special ids and any other special-token text raises.

        >>> tok = BPETokenizer({}, special_tokens={"<|eot|>": 256})
        >>> tok.encode("a<|eot|>", allowed_special="all")
        [97, 256]
        """
        allowed = self._allowed_specials(allowed_special)
        if allowed_special != "none":
            self._raise_on_disallowed(text, allowed)
        parts = split_special(text, allowed)
        ids = []
        for k, part in enumerate(parts):
            # even parts are ordinary text, odd parts are allowed special tokens
            ids.extend(self.encode_ordinary(part) if k % 2 == 0 else [self.special_tokens[part]])
        return ids

    def _allowed_specials(self, allowed_special):
        if allowed_special == "all":
            return list(self.special_tokens)
        if allowed_special in ("none", "none_raise"):
            return []
        if isinstance(allowed_special, str):
            raise ValueError(f"allowed_special={allowed_special!r}: use 'all', 'none', "
                             "'none_raise' or a set of special-token strings")
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        return list(allowed_special)

    def _raise_on_disallowed(self, text, allowed):
        for special in self.special_tokens:
            if special not in allowed and special in text:
                raise ValueError(
                    f"text contains the special token {special!r} at position "
                    f"{text.index(special)}; pass allowed_special='all' (or a set holding it) to "
                    "encode it as a special token, or allowed_special='none' to encode it as text")

    # -- decoding -------------------------------------------------------------------------------

    def decode_bytes(self, ids):
        """Concatenate the bytes of the tokens; an unknown id raises ValueError.

        >>> BPETokenizer({}).decode_bytes([104, 105])
        b'hi'
        """
        ids = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        try:
            if ids and min(ids) < 0:
                raise IndexError  # a negative index would silently count from the end
            return b"".join(map(self._id_to_bytes.__getitem__, ids))
        except (IndexError, TypeError):  # TypeError: a gap (None) in the id range
            bad = next(i for i in ids if not 0 <= i < self.vocab_size or i not in self.vocab)
            raise ValueError(f"token id {bad} is not in the vocabulary") from None

    def decode(self, ids):
        """Decode ids to text; bytes that are not valid UTF-8 become U+FFFD, never an error.

        >>> BPETokenizer({}).decode([226, 130, 172, 226])
        '€\ufffd'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id):
        """The bytes one token stands for.

        >>> BPETokenizer({(104, 105): 256}).token_bytes(256)
        b'hi'
        """
        return self.decode_bytes([token_id])

    # -- files ----------------------------------------------------------------------------------

    def save(self, path):
        """Write the tokenizer as versioned, human-readable JSON, one merge `[a, b, id]` a line.

        The file starts `{"format": "tinyllm-bpe", "version": 1, "pattern": ...,` and ends with
        the merges in order, e.g. `[32, 116, 256]` for " " + "t" -> 256.
        """
        fields = {"pattern": self.pattern, "special_tokens": self.special_tokens,
                  "byte_ids": self.byte_ids,
                  "merges": [[a, b, i] for (a, b), i in self.merges.items()]}
        write_versioned(path, _FORMAT, _VERSION, fields, list_field="merges")

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; a corrupt or wrong-version file raises TokenizerError.

        Usage: `tok = BPETokenizer.load("shakespeare-4096.json")`.
        """
        data = read_versioned(path, _FORMAT, _VERSION)
        try:
            return cls(*_fields(data))
        except TokenizerError as e:
            raise TokenizerError(f"{path}: corrupt {_FORMAT} file ({e})") from None

    def save_tiktoken(self, path):
        """Write tiktoken's rank file (`base64(bytes) rank` per line); ids become ranks.

        Special tokens are not in the file; tiktoken takes them as an argument:
            tok.save_tiktoken("ours.tiktoken")
            enc = tiktoken.Encoding("ours", pat_str=tok.pattern, special_tokens=tok.special_tokens,
                mergeable_ranks=tiktoken.load.load_tiktoken_bpe("ours.tiktoken"))
        """
        ordinary = {i: b for i, b in self.vocab.items() if i not in self.special_tokens.values()}
        if len(set(ordinary.values())) != len(ordinary):
            raise ValueError("two tokens have the same bytes; tiktoken cannot represent that")
        tiktoken_files.write_rank_file(path, ordinary)

    @classmethod
    def from_tiktoken(cls, path, pattern, special_tokens=None):
        """Load a tiktoken rank file (e.g. r50k_base, cl100k_base) with its split pattern.

        Usage: `BPETokenizer.from_tiktoken("cl100k_base.tiktoken", "gpt4",
        {"<|endoftext|>": 100257})` encodes every text to the ids tiktoken gives.
        """
        byte_ids, merges = tiktoken_files.merges_from_ranks(tiktoken_files.read_rank_file(path))
        return _named(path, lambda: cls(merges, pattern, special_tokens, byte_ids))

    @classmethod
    def from_gpt2(cls, encoder_json_path, vocab_bpe_path, pattern="gpt2"):
        """Load GPT-2's original encoder.json + vocab.bpe pair.

        Usage: `BPETokenizer.from_gpt2("encoder.json", "vocab.bpe")`; for GPT-2's own files that
        is 50257 ids, the last being the special token "<|endoftext|>" = 50256.
        """
        byte_ids, merges, specials = tiktoken_files.read_gpt2_files(
            encoder_json_path, vocab_bpe_path)
        return _named(encoder_json_path, lambda: cls(merges, pattern, specials, byte_ids))


def _named(path, build):
    """build(), with `path` prefixed to the message of a TokenizerError it raises."""
    try:
        return build()
    except TokenizerError as e:
        raise TokenizerError(f"{path}: {e}") from None


def _compile(pattern):
    """The compiled split pattern (a name or a regex); TokenizerError if it is neither."""
    if not isinstance(pattern, str) or not _is_utf8(pattern):
        raise TokenizerError(f"the split pattern {repr(pattern)[:60]} is not a string")
    try:
        return compile_pattern(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as e:
        raise TokenizerError(f"the split pattern {pattern[:60]!r} does not compile "
                             f"({' '.join(str(e).split())})") from None


def _fields(data):
    """The constructor's (merges, pattern, special_tokens, byte_ids) from a saved file's JSON,
    the containers' types checked here, the ids and strings in them by the constructor."""
    merges = data.get("merges")
    specials, byte_ids = data.get("special_tokens"), data.get("byte_ids")
    triples = isinstance(merges, list) and all(isinstance(m, list) and len(m) == 3
                                               for m in merges)
    if not triples:
        raise TokenizerError("'merges' is not a list of [a, b, id] triples")
    if not isinstance(specials, dict) or not isinstance(byte_ids, list):
        raise TokenizerError("'special_tokens' is not an object or 'byte_ids' not a list")
    pairs = {(as_id(a), as_id(b)): as_id(i) for a, b, i in merges}
    if len(pairs) != len(merges):
        raise TokenizerError("a pair is merged twice")
    return pairs, data.get("pattern"), specials, byte_ids


def _build_vocab(byte_ids, merges, special_tokens):
    # id -> bytes, checking on the way that the pieces fit together: 256 distinct byte ids,
    # every merge built from tokens with smaller ids, no id used twice, ids no larger than the
    # number of tokens warrants, and a bounded total size.
    _check_id_range([*byte_ids, *merges.values(), *special_tokens.values()])
    if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
        raise TokenizerError("byte_ids must give 256 distinct ids, one per byte value")
    vocab = {i: bytes([x]) for x, i in enumerate(byte_ids)}
    size = 256  # bytes of all tokens so far
    for (a, b), i in sorted(merges.items(), key=lambda item: item[1]):
        if i in vocab or a not in vocab or b not in vocab or max(a, b) >= i:
            raise TokenizerError(f"merge ({a}, {b}) -> {i} does not build on smaller known ids")
        size += len(vocab[a]) + len(vocab[b])
        if size > MAX_VOCAB_BYTES:  # checked before the bytes are made
            raise TokenizerError(f"the tokens' bytes add up to more than {MAX_VOCAB_BYTES}")
        vocab[i] = vocab[a] + vocab[b]
    for s, i in special_tokens.items():
        if not isinstance(s, str) or not s or not _is_utf8(s) or i in vocab:
            raise TokenizerError(f"special token {repr(s)[:40]} -> {i} is invalid or reuses an id")
        vocab[i] = s.encode("utf-8")
    return vocab


def _check_id_range(ids):
    """Every id in 0 .. len(ids) + MAX_ID_GAP - 1, so the id -> bytes table stays small."""
    top = len(ids) + MAX_ID_GAP
    bad = next((i for i in ids if not 0 <= i < top), None)
    if bad is not None:
        raise TokenizerError(f"token id {bad} is out of range: {len(ids)} tokens may use the "
                             f"ids 0..{top - 1}")


def _is_utf8(text):
    """False for a string holding lone surrogates, which UTF-8 (and so a file) cannot store."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
