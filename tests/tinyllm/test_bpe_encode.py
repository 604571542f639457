"""Chunk encoding: the compiled whole-text encoder gives exactly the reference loop's ids."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer.bpe_encode import encode_chunk_reference, encode_text, rank_table
from tinyllm.tokenizer.bpe_train import train_fast

# Merges learned from a corpus rich in overlaps ("aaaa") and shared prefixes.
_CORPUS = ["aaaa", "aaab", "abab", "ba", "abba", "aabaab", " ab", " aab"] * 3
_MERGES = {pair: 256 + k for k, pair in enumerate(train_fast(_CORPUS, 12)[0])}
_TABLE = rank_table(_MERGES)

# Chunks from a small pool repeat (the encoder copies repeats); the others bring any code point.
chunk_texts = st.sampled_from(["aaaa", "ab", " aab", "é", "😀a"]) | st.text(min_size=1,
                                                                      max_size=20)


def _encode(chunks, table, byte_ids):
    # encode_text on a list of chunk strings: their code points, and where each chunk ends
    cps = np.array([ord(c) for chunk in chunks for c in chunk], dtype=np.uint32)  # T
    ends = np.cumsum([len(chunk) for chunk in chunks], dtype=np.int64)  # K
    return encode_text(cps, ends, byte_ids, table).tolist()


def test_known_answer_by_hand():
    # merges: (a,a)->256, (b,b)->257, (256,257)->258. "aabb" merges "aa", then "bb", then both.
    merges = {(97, 97): 256, (98, 98): 257, (256, 257): 258}
    assert encode_chunk_reference(b"aabbaab", merges, range(256)) == [258, 256, 98]
    assert _encode(["aabbaab"], rank_table(merges), np.arange(256)) == [258, 256, 98]


def test_lowest_rank_wins_over_leftmost():
    # "abc": (b,c) has the lower rank, so it merges first although (a,b) is further left.
    merges = {(98, 99): 256, (97, 98): 257}
    assert encode_chunk_reference(b"abc", merges, range(256)) == [97, 256]
    assert _encode(["abc"], rank_table(merges), np.arange(256)) == [97, 256]


@given(st.lists(chunk_texts, max_size=12))
def test_compiled_encoder_equals_reference(chunks):
    expected = [i for c in chunks for i in encode_chunk_reference(c.encode(), _MERGES, range(256))]
    assert _encode(chunks, _TABLE, np.arange(256)) == expected


def test_same_code_points_in_other_chunks_are_not_mixed_up():
    # "aa" + "a" and "a" + "aa" share code points but are different chunks
    merges = {(97, 97): 256}
    assert _encode(["aa", "a", "a", "aa", "aa"], rank_table(merges), np.arange(256)) == [
        256, 97, 97, 256, 256]


@given(chunk_texts, st.permutations(range(256)))
def test_byte_ids_need_not_be_the_byte_values(chunk, perm):
    # GPT-2's files number the single bytes in another order; renumbering them (and the merges
    # that use them) must renumber the output the same way.
    renumber = list(perm) + list(range(256, 300))
    merges = {(renumber[a], renumber[b]): i for (a, b), i in _MERGES.items()}
    expected = [renumber[i] for i in encode_chunk_reference(chunk.encode(), _MERGES, range(256))]
    assert _encode([chunk], rank_table(merges), np.array(perm)) == expected
