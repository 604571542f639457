"""tinyllm/cli/prepare.py: prepare token files, then train on them."""
import dataclasses
import json
import re

from tests.tinyllm.cli.helpers import SMALL
from tests.tinyllm.test_pipeline import OTHER, STORY
from tinyllm.cli import main
from tinyllm.data.pipeline import PrepareOptions
from tinyllm.data.quality import QualityRules
from tinyllm.data.token_files import read_meta


def test_prepare_then_train_on_the_token_files(tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    lines = [f'{{"text": "document {i % 7}: to be or not to be, that is the question"}}'
             for i in range(60)]
    src.write_text("\n".join(lines) + "\n")
    main(["prepare", str(src), str(tmp_path / "data"), "--tokenizer", "bpe:300", "--dedup",
          "--quiet"])
    prepared = capsys.readouterr().out
    vocab = int(re.search(r"vocabulary (\d+)", prepared).group(1))
    assert 256 < vocab <= 300  # seven distinct documents run out of pairs to merge before 300
    main(["train", *SMALL, "--block_size", "8", "--max_iters", "2", "--sample_tokens", "5",
          "--dataset", str(tmp_path / "data"), "--out_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert f"vocabulary {vocab}" in out and "--- sample ---" in out


def test_every_flag_reaches_the_options_meta_json_records(tmp_path, capsys):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in (STORY, OTHER, STORY)))
    main(["prepare", str(src), str(tmp_path / "data"), "--dedup", "--dedup-lines", "--quality",
          "--near-dup", "0.7", "--num-perm", "64", "--val-fraction", "0.2", "--quiet"])
    expected = PrepareOptions(dedup=True, dedup_lines=True, quality=QualityRules(),
                              near_dup=0.7, num_perm=64, val_fraction=0.2)
    settings = read_meta(tmp_path / "data")["settings"]  # JSON: the rules' tuples are lists
    assert settings == json.loads(json.dumps({"tokenizer": "char",
                                              **dataclasses.asdict(expected)}))
    assert "wrote" in capsys.readouterr().out
