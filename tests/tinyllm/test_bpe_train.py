"""BPE training: hand-checked answers, the tie rule, and fast trainer == reference trainer."""
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer.bpe_train import (
    best_pair, get_stats, merge, train_fast, train_reference)
from tinyllm.tokenizer.pretokenize import split_chunks

# Small alphabets make repeated pairs (and ties, and "aaaa" overlaps) likely; the wide one
# brings multi-byte UTF-8.
words = st.text(st.sampled_from("aab ba\n"), max_size=30) | st.text(max_size=15)
corpora = st.lists(words, max_size=8).map(" ".join)


def test_get_stats_adds_into_existing_counts():
    counts = get_stats([1, 2, 1, 2])
    assert counts == {(1, 2): 2, (2, 1): 1}
    assert get_stats([2, 1], counts) == {(1, 2): 2, (2, 1): 2}


def test_merge_scans_left_to_right():
    assert merge([7, 7, 7, 7, 7], (7, 7), 9) == [9, 9, 7]
    assert merge([1, 2], (2, 1), 9) == [1, 2]
    assert merge([], (1, 2), 9) == []


def test_tie_goes_to_smallest_pair():
    assert best_pair({(5, 1): 2, (3, 9): 2, (3, 4): 2, (0, 0): 1}) == (3, 4)


def test_wikipedia_example_by_hand():
    # aaabdaaabac: "aa" occurs 4 times -> 256; then (a,b) and (256,a) tie at 2 -> (97,98) = 257
    # by the tie rule; then (256,257) occurs twice -> 258, leaving [258 d 258 a c].
    expected = ([(97, 97), (97, 98), (256, 257)], [4, 2, 2])
    for train in (train_reference, train_fast):
        assert train(["aaabdaaabac"], 3) == expected


def test_stops_when_no_pairs_are_left():
    for train in (train_reference, train_fast):
        assert train(["ab", "ab", "c"], 10) == ([(97, 98)], [2])
        assert train([], 10) == ([], [])


def test_weights_count_repeated_chunks():
    # "zz" five times outweighs the four (a,b) of "abababab", though the unique-chunk trainer
    # stores "zz" once (with weight 5) and the tie rule would favour (97, 98).
    assert train_fast(["zz"] * 5 + ["abababab"], 1) == ([(122, 122)], [5])


@given(corpora, st.integers(0, 40))
def test_fast_trainer_equals_reference(text, n_merges):
    chunks = split_chunks(text)
    assert train_fast(chunks, n_merges) == train_reference(chunks, n_merges)


@given(st.text(st.sampled_from("ab12 .!\n"), max_size=200))
def test_merges_never_cross_chunk_boundaries(text):
    # With letters and non-letters in separate chunks, no learned token can mix the two.
    chunks = split_chunks(text, r"[a-z]+|[^a-z]+")
    merges, _ = train_fast(chunks, 30)
    vocab = {i: bytes([i]) for i in range(256)}
    for k, (a, b) in enumerate(merges):
        vocab[256 + k] = vocab[a] + vocab[b]
        assert vocab[256 + k].isalpha() or not any(chr(c).isalpha() for c in vocab[256 + k])
