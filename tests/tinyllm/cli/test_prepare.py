"""tinyllm/cli/prepare.py: prepare token files, then train on them."""
import re

from tests.tinyllm.cli.helpers import SMALL
from tinyllm.cli import main


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
