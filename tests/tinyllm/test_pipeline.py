"""prepare: every stage removes what it should, counts it in documents, bytes and tokens, the
token files hold exactly the kept text, and each way of naming a tokenizer works. Tiny
Shakespeare (env TINYLLM_DATA) round-trips."""
import dataclasses
import doctest
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm.data.pipeline as pipeline_module
from tinyllm.data.clean import clean
from tinyllm.data.pipeline import PrepareOptions, prepare
from tinyllm.data.quality import QualityRules
from tinyllm.data.sources import iter_documents, source_sha256
from tinyllm.data.token_files import load_tokenizer, open_tokens, read_meta
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

STORY = (
    "The river had risen during the night, and by morning the lower road was under water. "
    "Farmers who lived near the bank moved their animals to the hill behind the church, while "
    "children watched from the bridge with a mixture of fear and delight. Nobody could remember "
    "a flood like this one since the winter when the mill burned down, and several old men "
    "argued about that year over coffee until the rain finally stopped. By evening the water "
    "had fallen a little, leaving mud on every step and a strange silence over the fields, so "
    "the baker opened his shop again and sold bread to anyone who had walked that far."
)
OTHER = (
    "A small boat drifted past the harbour wall as the fishermen mended their nets in the sun. "
    "One of them told a long story about a storm he had survived as a boy, and the others "
    "pretended they had never heard it before, because it was his birthday and the tea was "
    "still warm. Later the gulls came down to the quay, and a girl with a red scarf counted "
    "them aloud until her mother called her home for supper, which was fish again."
)


@pytest.fixture
def corpus(tmp_path):
    """Five files: a story in HTML, its exact copy (other case and spacing), a near copy
    (one word changed), spam, and a second story."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    files = {"a.txt": f"<p>{STORY}</p>", "b.txt": "  " + STORY.upper().replace(" ", "  "),
             "c.txt": STORY.replace("coffee", "tea"), "d.txt": "Buy now! Best price! " * 30,
             "e.txt": OTHER}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _text(out, tok, split):
    return tok.decode(open_tokens(out, split).tolist())


def test_docstring_examples():
    assert doctest.testmod(pipeline_module).failed == 0


def test_every_stage_removes_its_documents(corpus, tmp_path):
    out = tmp_path / "out"
    options = PrepareOptions(dedup=True, quality=QualityRules(), near_dup=0.8, val_fraction=0.3)
    meta = prepare(corpus, out, "char", options, progress=False)
    stages = {s["name"]: (s["docs_in"], s["docs_out"]) for s in meta["stages"]}
    assert stages == {"clean": (5, 5), "exact_dedup": (5, 4), "quality": (4, 3),
                      "near_dup": (3, 2)}
    assert meta["stages"][2]["removed_by"] == {"stop_words": 1}
    # a character tokenizer: tokens are characters, also of text outside the kept vocabulary
    # (the HTML tags, the upper-case copy); near_dup's counts come from its keep mask
    spam, near = 21 * 30 - 1, len(STORY) - len("coffee") + len("tea")
    raw = sum(len(f.read_text()) for f in corpus.iterdir())
    tokens = {s["name"]: (s["tokens_in"], s["tokens_out"]) for s in meta["stages"]}
    assert tokens == {"clean": (raw, 2 * len(STORY) + near + spam + len(OTHER)),
                      "exact_dedup": (2 * len(STORY) + near + spam + len(OTHER),
                                      len(STORY) + near + spam + len(OTHER)),
                      "quality": (len(STORY) + near + spam + len(OTHER),
                                  len(STORY) + near + len(OTHER)),
                      "near_dup": (len(STORY) + near + len(OTHER), len(STORY) + len(OTHER))}
    tok = load_tokenizer(out)
    assert _text(out, tok, "train") + _text(out, tok, "val") == f"{STORY}\n\n{OTHER}\n\n"
    assert meta["splits"]["val"]["documents"] == 1 and meta["separator"] == tok.encode("\n\n")
    assert meta["source"]["sha256"] == source_sha256(corpus) and meta["dtype"] == "uint16"
    assert json.loads((out / "report.json").read_text()) == meta["stages"]
    assert meta["settings"] == {"tokenizer": "char", **dataclasses.asdict(options)}
    assert meta["settings"]["near_dup"] == 0.8 and meta["settings"]["quality"]["min_words"] == 50
    on_disk = read_meta(out)
    assert {**json.loads(json.dumps(meta)), "format": "tinyllm-tokens", "version": 1} == on_disk
    assert sorted(p.name for p in out.iterdir()) == [
        "meta.json", "report.json", "tokenizer.json", "train.bin", "val.bin"]


def test_token_counts_per_stage_by_hand(tmp_path):
    # four speeches: double spaces cleaning collapses, a tag that cleans to nothing, the first
    # one again (gone in exact dedup), and a curly apostrophe (1 character, 3 UTF-8 bytes)
    src = tmp_path / "play.txt"
    src.write_text("To be,  or not.\n\n<br>\n\nTo be, or not.\n\nAy, there\u2019s the rub.\n",
                   encoding="utf-8")
    options = PrepareOptions(dedup=True, val_fraction=0.0)
    meta = prepare(src, tmp_path / "out", "char", options, progress=False)
    counts = [(s["name"], s["docs_in"], s["docs_out"], s["tokens_in"], s["tokens_out"],
               s["bytes_in"], s["bytes_out"]) for s in meta["stages"]]
    assert counts == [("clean", 4, 3, 15 + 4 + 14 + 20, 14 + 14 + 20, 55, 50),
                      ("exact_dedup", 3, 2, 14 + 14 + 20, 14 + 20, 50, 36)]
    assert meta["stages"][1]["tokens_removed"] == 14
    assert meta["splits"]["train"] == {"tokens": 14 + 20 + 2 * 2, "documents": 2}


words = st.sampled_from(["to", "be", "To", "or", "not", "\u00fcber", "\u2019s", " ", "  ", "\n",
                         "\n\n", "<p>", "&amp;", "\x07"])
documents = st.lists(st.lists(words, max_size=12).map("".join), max_size=10)


@settings(max_examples=30, deadline=None)
@given(documents, st.booleans(), st.booleans(), st.booleans(), st.sampled_from([None, 0.5]),
       st.sampled_from(["char", "bytes"]))
def test_token_counts_add_up(tmp_path_factory, docs, dedup, dedup_lines, quality, near_dup,
                             name):
    """Each stage takes in what the one before let through, the first takes in the source, and
    the last lets through the token files' contents less their separators."""
    tmp = tmp_path_factory.mktemp("corpus")
    src = tmp / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    # "bytes": BPE without merges, one token per UTF-8 byte, so tokens must equal bytes
    tok = "char" if name == "char" else BPETokenizer({})
    try:
        options = PrepareOptions(dedup=dedup, dedup_lines=dedup_lines, near_dup=near_dup,
                                 quality=QualityRules() if quality else None, shingle_size=2)
        meta = prepare(src, tmp / "out", tok, options, progress=False)
    except ValueError as e:  # every document empty or filtered out: nothing to count
        assert "no document is left" in str(e)
        return
    stages = meta["stages"]
    for before, after in zip(stages, stages[1:]):
        assert [after[f"{u}_in"] for u in ("docs", "bytes", "tokens")] == [
            before[f"{u}_out"] for u in ("docs", "bytes", "tokens")]
    per_doc = len if name == "char" else (lambda d: len(d.encode("utf-8")))
    assert stages[0]["tokens_in"] == sum(per_doc(d) for d in docs)
    if name == "bytes":
        assert all(s["tokens_in"] == s["bytes_in"] and s["tokens_out"] == s["bytes_out"]
                   for s in stages)
    # stages that only drop documents change no text: nothing dropped, no token lost
    assert all(s["tokens_removed"] == 0 for s in stages
               if s["docs_removed"] == 0 and s["name"] in ("exact_dedup", "quality", "near_dup"))
    last, splits = stages[-1], meta["splits"]
    assert last["docs_out"] == splits["train"]["documents"] + splits["val"]["documents"]
    on_disk = len(open_tokens(tmp / "out", "train")) + len(open_tokens(tmp / "out", "val"))
    assert last["tokens_out"] + last["docs_out"] * len(meta["separator"]) == on_disk


def test_without_filters_everything_is_kept(corpus, tmp_path):
    meta = prepare(corpus, tmp_path / "out", "char", progress=False)
    assert [s["name"] for s in meta["stages"]] == ["clean"]
    assert sum(split["documents"] for split in meta["splits"].values()) == 5


def test_line_dedup_stage(tmp_path):
    src = tmp_path / "lines.jsonl"
    src.write_text(json.dumps({"text": "Menu\nStory one."}) + "\n"
                   + json.dumps({"text": "Menu\nStory two."}) + "\n"
                   + json.dumps({"text": "menu"}) + "\n")
    options = PrepareOptions(dedup_lines=True, val_fraction=0.0)
    meta = prepare(src, tmp_path / "out", "char", options, progress=False)
    tok = load_tokenizer(tmp_path / "out")
    assert _text(tmp_path / "out", tok, "train") == "Menu\nStory one.\n\nStory two.\n\n"
    assert meta["stages"][1]["removed_by"] == {"every line seen before": 1}


def test_bpe_spec_trains_with_an_end_of_text_token(corpus, tmp_path):
    out = tmp_path / "out"
    options = PrepareOptions(dedup=True, val_fraction=0.0)
    meta = prepare(corpus, out, "bpe:300", options, progress=False)
    tok = load_tokenizer(out)
    assert isinstance(tok, BPETokenizer) and meta["separator"] == [299]
    train = open_tokens(out, "train")
    assert int(np.sum(train == 299)) == meta["splits"]["train"]["documents"] == 4
    texts = tok.decode(train.tolist()).split("<|endoftext|>")
    spam = ("Buy now! Best price! " * 30).strip()
    assert texts == [STORY, STORY.replace("coffee", "tea"), spam, OTHER, ""]


def test_saved_tokenizer_path_and_tokenizer_object(corpus, tmp_path):
    tok = BPETokenizer.train(STORY + OTHER, 280, special_tokens=["<|endoftext|>"])
    tok.save(tmp_path / "tok.json")
    meta = prepare(corpus, tmp_path / "a", str(tmp_path / "tok.json"), progress=False)
    assert meta["tokenizer"]["class"] == "BPETokenizer" and meta["separator"] == [279]
    char = CharTokenizer.from_text("".join(clean(d) for d in iter_documents(corpus)) + "\n")
    meta = prepare(corpus, tmp_path / "b", char, PrepareOptions(eot_id=0), progress=False)
    assert meta["separator"] == [0] and meta["vocab_size"] == char.vocab_size


def test_bad_arguments_are_errors_before_any_work(corpus, tmp_path):
    with pytest.raises(ValueError, match="bpe2048"):
        prepare(corpus, tmp_path / "out", "bpe2048", progress=False)
    with pytest.raises(ValueError, match="near_dup"):
        PrepareOptions(near_dup=0.0)
    with pytest.raises(ValueError, match="val_fraction"):
        PrepareOptions(val_fraction=1.0)


SHAKESPEARE = os.environ.get("TINYLLM_DATA")


@pytest.mark.skipif(not SHAKESPEARE, reason="set TINYLLM_DATA to tinyshakespeare.txt")
def test_tiny_shakespeare_round_trips_with_the_char_tokenizer(tmp_path):
    options = PrepareOptions(dedup=True, near_dup=0.8)
    meta = prepare(SHAKESPEARE, tmp_path, "char", options, progress=False)
    tok = load_tokenizer(tmp_path)
    text = _text(tmp_path, tok, "train") + _text(tmp_path, tok, "val")
    assert tok.vocab_size == 65
    stages = {s["name"]: s for s in meta["stages"]}
    assert stages["clean"]["docs_out"] == 7222 and 0 < stages["near_dup"]["docs_removed"] < 10
    # dedup removed whole speeches only: the kept ones are a subsequence of the cleaned ones
    kept = text.split("\n\n")[:-1]
    cleaned = iter([clean(d) for d in iter_documents(SHAKESPEARE)])
    assert all(speech in cleaned for speech in kept)
    assert len(kept) == stages["near_dup"]["docs_out"]
    # ASCII through a character tokenizer: a token is a byte, and the separator is 2 tokens
    assert all(s["tokens_in"] == s["bytes_in"] and s["tokens_out"] == s["bytes_out"]
               for s in meta["stages"])
    assert stages["near_dup"]["tokens_out"] + 2 * len(kept) == len(text)
    val_share = meta["splits"]["val"]["tokens"] / len(text)
    assert abs(val_share - 0.1) < 0.001


@pytest.mark.skipif(not SHAKESPEARE, reason="set TINYLLM_DATA to tinyshakespeare.txt")
def test_tiny_shakespeare_without_filters_is_the_text(tmp_path):
    prepare(SHAKESPEARE, tmp_path, "char", progress=False)
    tok = load_tokenizer(tmp_path)
    text = _text(tmp_path, tok, "train") + _text(tmp_path, tok, "val")
    with open(SHAKESPEARE, encoding="utf-8") as f:
        original = f.read()
    assert text.split() == original.split()  # only whitespace (trailing spaces) may differ


def test_an_empty_source_is_an_error_not_a_vocabulary_of_one(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no document is left"):
        prepare(str(tmp_path / "empty.txt"), str(tmp_path / "out"), "char", progress=False)
