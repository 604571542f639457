"""Exact deduplication: what the fingerprint ignores and what it does not; line dedup."""
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.exact_dedup import SeenSet, drop_seen_lines, fingerprint

_word = st.text(st.characters(categories=["L", "N", "P"]), min_size=1)


@given(st.lists(_word, min_size=1), st.sampled_from([" ", "  ", "\n", "\t \n"]))
def test_fingerprint_ignores_spacing(words, gap):
    assert fingerprint(" ".join(words)) == fingerprint(gap.join(words) + "\n")


@given(st.text())
def test_fingerprint_ignores_case_and_is_64_bit(text):
    assert fingerprint(text.casefold()) == fingerprint(text)
    assert 0 <= fingerprint(text) < 1 << 64


def test_fingerprint_sees_every_other_change():
    base = fingerprint("The cat sat.")
    assert len({base, fingerprint("The cat sat!"), fingerprint("The cat sa t."),
                fingerprint("The cat sat. ."), fingerprint("")}) == 5


@given(st.lists(st.sampled_from(["a", "b", "A", "a ", "c"]), max_size=30))
def test_seen_set_keeps_the_first_of_each(texts):
    seen = SeenSet()
    kept = [t for t in texts if seen.first_time(t)]
    keys = [t.strip().lower() for t in kept]
    assert len(keys) == len(set(keys)) == len(seen)
    assert set(keys) == {t.strip().lower() for t in texts}


def test_drop_seen_lines_across_documents_keeps_paragraph_breaks():
    seen = SeenSet()
    assert drop_seen_lines("Home | About\nFirst story.\n\nMore.", seen) == \
        "Home | About\nFirst story.\n\nMore."
    assert drop_seen_lines("home | about\nSecond story.\n\nMore.\nEnd.", seen) == \
        "Second story.\n\nEnd."
    assert drop_seen_lines("Second  story.", seen) == ""
