"""Spool: documents come back exactly, in order and by index, and the file goes on close."""
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.spool import Spool


@given(st.lists(st.text()), st.data())
def test_round_trip_in_order_and_by_index(tmp_path_factory, texts, data):
    path = tmp_path_factory.mktemp("spool") / "docs.spool"
    with Spool(path) as spool:
        for k, text in enumerate(texts):
            spool.append(text)
            if k and data.draw(st.booleans()):  # reads between appends must not disturb them
                i = data.draw(st.integers(0, k))
                assert spool[i] == texts[i]
        assert list(spool) == texts and len(spool) == len(texts)
        assert [spool.nbytes(i) for i in range(len(texts))] == [len(t.encode()) for t in texts]
        assert [spool[i] for i in reversed(range(len(texts)))] == texts[::-1]
    assert not path.exists()


def test_iteration_and_indexing_interleave(tmp_path):
    with Spool(tmp_path / "s") as spool:
        for text in ["a", "bb", "ccc"]:
            spool.append(text)
        assert [(doc, spool[0]) for doc in spool] == [("a", "a"), ("bb", "a"), ("ccc", "a")]
