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

Follows: tiktoken's `load.py` (file layout) and GPT-2's `encoder.py` (the byte mapping).
Leaves out: downloading the published files and checking their hashes; pass local paths.
"""
import base64
import json

from .bpe_encode import encode_chunk_reference


def write_rank_file(path, vocab):
    """Write tiktoken's rank file from {id: token bytes}; ids become ranks.

    Produces lines like `IQ== 0` for the token b"!" with rank 0.
    """
    with open(path, "w", encoding="ascii") as f:
        for rank, token in sorted(vocab.items()):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")


def read_rank_file(path):
    """Read a tiktoken rank file into {token bytes: rank}; a malformed line raises ValueError.

    A line `IHRo 256` gives the entry b" th": 256.
    """
    ranks = {}
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token, validate=True)] = int(rank)
            except ValueError as e:
                raise ValueError(f"{path}:{line_no}: not a `base64 rank` line ({e})") from None
    return ranks


def merges_from_ranks(ranks):
    """Recover (byte_ids, merges) from tiktoken ranks {token bytes: rank}.

    >>> ranks = {bytes([x]): x for x in range(256)}
    >>> ranks.update({b"aa": 256, b"aaa": 257})
    >>> merges_from_ranks(ranks)[1]
    {(97, 97): 256, (256, 97): 257}
    """
    missing = [x for x in range(256) if bytes([x]) not in ranks]
    if missing:
        raise ValueError(f"rank file lacks single-byte tokens, e.g. byte {missing[0]}")
    byte_ids = [ranks[bytes([x])] for x in range(256)]
    merges = {}
    # In rank order, every lower-ranked merge is known when a token is split.
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = encode_chunk_reference(token, merges, byte_ids)
        if len(parts) != 2 or max(parts) >= rank:
            raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two lower ranks")
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
    with open(encoder_json_path, encoding="utf-8") as f:
        encoder = json.load(f)  # token string -> id
    to_char = bytes_to_unicode()
    try:
        byte_ids = [encoder[to_char[x]] for x in range(256)]
        merges = _read_merge_lines(vocab_bpe_path, encoder)
    except KeyError as e:
        raise ValueError(f"{encoder_json_path} has no entry for token {e}") from None
    known = set(byte_ids) | set(merges.values())
    special_tokens = {s: i for s, i in encoder.items() if i not in known}
    return byte_ids, merges, special_tokens


def _read_merge_lines(path, encoder):
    merges = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # The first line is a "#version: 0.2" header; skip it and blank lines.
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        left, sep, right = line.partition(" ")
        if not sep or " " in right:
            raise ValueError(f"{path}:{line_no}: expected two tokens separated by a space")
        merges[encoder[left], encoder[right]] = encoder[left + right]
    return merges
