"""The examples run as the README and their docstrings say (smallest settings that still show
the point)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(script, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_micrograd_style_mlp_learns_the_spiral():
    out = run("01_micrograd_style.py")
    last = [line for line in out.splitlines() if line.startswith("step")][-1]
    assert float(last.split("accuracy")[1].strip().rstrip("%")) > 80.0
    assert "gradcheck: backward agrees" in out


@pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"), reason="needs TINYLLM_DATA")
def test_train_bpe_prints_merges_and_compression():
    out = run("02_train_bpe.py", "--vocab-size", "300")
    assert "first merges:" in out and "bytes per token" in out
    assert "ROMEO: But, soft!" in out.replace("|", "")  # the line, token boundaries shown by |


@pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"), reason="needs TINYLLM_DATA")
def test_shakespeare_bpe_reports_bits_per_character(tmp_path):
    out = run("03_shakespeare_bpe.py", "--vocab-size", "300", "--max_iters", "2",
              "--eval_iters", "2", "--out", str(tmp_path))
    bits = float(out.split("nats/token = ")[1].split(" bits/char")[0])
    assert 0.5 < bits < 8.0  # log2(300) / (chars per token) bounds an untrained model
