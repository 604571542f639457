"""Flags for a tiny, fast model, shared by the command tests."""
import os

import pytest

SMALL = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--batch-size", "4",
         "--eval-iters", "2", "--eval-interval", "2", "--block-size", "16", "--no-progress"]

needs_data = pytest.mark.skipif(not os.environ.get("TINYLLM_DATA"),
                                reason="set TINYLLM_DATA to the Tiny Shakespeare text")
