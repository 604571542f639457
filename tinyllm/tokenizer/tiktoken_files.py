"""Reading and writing the vocabulary files of tiktoken and of the original GPT-2 release.

Two formats describe the same thing, a byte-level BPE, from opposite ends:

* tiktoken's rank file has one line per token, `base64(token bytes) rank`, and no merges at all.
  The merges are implied: token T of rank r is what BPE makes of T's bytes using only the tokens
  ranked below r, and that must come out as exactly two pieces (a, b). `merges_from_ranks`
  recovers them that way.
* GPT-2's `encoder.json` maps token strings to ids, and `vocab.bpe` lists the merges in rank
  order as pairs of token strings. JSON and text files want printable text, so GPT-2 first maps
  every byte to a visible character (`bytes_to_unicode`): printable Latin-1 bytes stand for
  themselves, the others (space, control bytes, ...) are shifted to code points from 256 up, so
  a space becomes "Ġ" and a newline "Ċ".

Both readers raise TokenizerError for a malformed file. Recovering a merge costs time
quadratic in the token's length (the reference encoder), so rank-file tokens are limited to
MAX_TOKEN_BYTES; published vocabularies stay far below it (their longest tokens are 128 bytes).

Follows: tiktoken's `load.py` (file layout) and GPT-2's `encoder.py` (the byte mapping).
Leaves out: downloading the published files and checking their hashes; pass local paths.
"""
import base64
import binascii
import json

from .bpe_encode import encode_chunk_reference
from .json_file import TokenizerError, as_id, read_json

MAX_TOKEN_BYTES = 512


def write_rank_file(path, vocab):
    """Write tiktoken's rank file from {id: token bytes}; ids become ranks.

    Produces lines like `IQ== 0` for the token b"!" with rank 0.
    """
    with open(path, "w", encoding="ascii") as f:
        for rank, token in sorted(vocab.items()):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")


def read_rank_file(path):
    """Read a tiktoken rank file into {token bytes: rank}; a malformed line raises
    TokenizerError, as does a token listed twice.

    A line `IHRo 256` gives the entry b" th": 256.
    """
    ranks = {}
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            token, rank = _rank_line(line, f"{path}:{line_no}")
            if token in ranks:
                raise TokenizerError(f"{path}:{line_no}: token {token[:40]!r} is listed twice")
            ranks[token] = rank
    return ranks


def _rank_line(line, where):
    # A rank is plain ASCII digits: int() would also take "1_0", " 1" or other scripts' digits.
    parts = line.split()
    if len(parts) != 2 or not parts[1].isdigit() or len(parts[1]) > 10:
        raise TokenizerError(f"{where}: not a `base64 rank` line")
    try:
        return base64.b64decode(parts[0], validate=True), int(parts[1])
    except binascii.Error as e:
        raise TokenizerError(f"{where}: not a `base64 rank` line ({e})") from None


def merges_from_ranks(ranks):
    """Recover (byte_ids, merges) from tiktoken ranks {token bytes: rank}.

    >>> ranks = {bytes([x]): x for x in range(256)}
    >>> ranks.update({b"aa": 256, b"aaa": 257})
    >>> merges_from_ranks(ranks)[1]
    {(97, 97): 256, (256, 97): 257}
    """
    missing = [x for x in range(256) if bytes([x]) not in ranks]
    if missing:
        raise TokenizerError(f"rank file lacks single-byte tokens, e.g. byte {missing[0]}")
    too_long = next((t for t in ranks if len(t) > MAX_TOKEN_BYTES), None)
    if too_long is not None:
        raise TokenizerError(f"a token of {len(too_long)} bytes; at most {MAX_TOKEN_BYTES}")
    byte_ids = [ranks[bytes([x])] for x in range(256)]
    merges = {}
    # In rank order, every lower-ranked merge is known when a token is split.
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = encode_chunk_reference(token, merges, byte_ids)
        if len(parts) != 2 or max(parts) >= rank:
            raise TokenizerError(f"token {token[:40]!r} (rank {rank}) is not a merge of two "
                                 "lower ranks")
        merges[tuple(parts)] = rank
    return byte_ids, merges


def bytes_to_unicode():
    """GPT-2's reversible map from each byte value to a printable character.

    >>> table = bytes_to_unicode()
    >>> table[ord("!")], table[ord(" ")], table[ord("\\n")]
    ('!', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 256
    for x in range(256):
        if x in printable:
            table[x] = chr(x)
        else:  # unprintable bytes take the next unused code point from 256 on, in byte order
            table[x] = chr(shifted)
            shifted += 1
    return table


def read_gpt2_files(encoder_json_path, vocab_bpe_path):
    """Read GPT-2's encoder.json + vocab.bpe into (byte_ids, merges, special_tokens).

    encoder.json reads `{"!": 0, "\"": 1, ..., "Ġt": 256, ...}` and vocab.bpe
    `#version: 0.2`, then `Ġ t` (merge 256: " " + "t"), `Ġ a`, ... Entries of encoder.json that
    are neither a single byte nor the result of a merge (GPT-2 has one: "<|endoftext|>" = 50256)
    become special tokens.
    """
    encoder = read_json(encoder_json_path, "GPT-2's encoder.json")  # token string -> id
    if not isinstance(encoder, dict):
        raise TokenizerError(f"{encoder_json_path}: not an object of token strings to ids")
    encoder = {s: as_id(i) for s, i in encoder.items()}
    to_char = bytes_to_unicode()
    try:
        byte_ids = [encoder[to_char[x]] for x in range(256)]
        merges = _read_merge_lines(vocab_bpe_path, encoder)
    except KeyError as e:
        raise TokenizerError(f"{encoder_json_path} has no entry for token "
                             f"{str(e)[:60]}") from None
    known = set(byte_ids) | set(merges.values())
    special_tokens = {s: i for s, i in encoder.items() if i not in known}
    return byte_ids, merges, special_tokens


def _read_merge_lines(path, encoder):
    merges = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not UTF-8 text ({e})") from None
    # The first line is a "#version: 0.2" header; skip it and blank lines.
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        left, sep, right = line.partition(" ")
        if not sep or " " in right:
            raise TokenizerError(f"{path}:{line_no}: expected two tokens separated by a space")
        merges[encoder[left], encoder[right]] = encoder[left + right]
    return merges


def write_gpt2_files(encoder_json_path, vocab_bpe_path, vocab, merges, special_tokens):
    """Write GPT-2's encoder.json + vocab.bpe (Hugging Face: vocab.json + merges.txt).

    vocab {id: token bytes} holds the ordinary tokens, merges {(a, b): id} are written in id
    order (the rank order GPT-2's merge loop applies them in), special_tokens {text: id} are
    stored under their own text. The merge 32 + 116 -> 256 becomes the line `Ġ t`.
    """
    to_char = bytes_to_unicode()
    strings = {i: "".join(to_char[x] for x in token) for i, token in vocab.items()}
    strings.update({i: s for s, i in special_tokens.items()})
    encoder = {s: i for i, s in sorted(strings.items())}
    if len(encoder) != len(strings):
        raise ValueError("two tokens have the same text; encoder.json cannot represent that")
    with open(encoder_json_path, "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    lines = [f"{strings[a]} {strings[b]}" for (a, b), _ in sorted(merges.items(),
                                                               key=lambda item: item[1])]
    with open(vocab_bpe_path, "w", encoding="utf-8") as f:
        f.write("\n".join(["#version: 0.2", *lines]) + "\n")
