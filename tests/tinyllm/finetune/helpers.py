"""Small records, a character tokenizer that covers them, and tiny GPTs for the fine-tuning
tests; `needs_*` skip a test when the shared data files are not pointed at."""
import os

import numpy as np
import pytest

from tinyllm.config import GPTConfig
from tinyllm.finetune.data import Example, Preference, Splits
from tinyllm.finetune.template import PREAMBLE
from tinyllm.model import GPT
from tinyllm.tokenizer import CharTokenizer

EXAMPLES = [Example("Say hi.", "", "Hi."), Example("Add 2 and 3.", "", "5"),
            Example("Reverse the word.", "stop", "pots"), Example("Name a colour.", "", "Red."),
            Example("Spell it.", "cat", "c-a-t"), Example("Is ice cold?", "", "Yes, it is.")]
PREFERENCES = [Preference(e.instruction, e.input, e.output, e.output.upper() + "!!")
               for e in EXAMPLES]

needs_instructions = pytest.mark.skipif(
    not os.environ.get("TINYLLM_INSTRUCTION_DATA"),
    reason="set TINYLLM_INSTRUCTION_DATA to instruction-data.json")
needs_preferences = pytest.mark.skipif(
    not os.environ.get("TINYLLM_PREFERENCE_DATA"),
    reason="set TINYLLM_PREFERENCE_DATA to instruction-data-with-preference.json")


def char_tokenizer(records=EXAMPLES + PREFERENCES):
    """A CharTokenizer over the template and every string field of `records`."""
    text = PREAMBLE + "#:\n" + "".join("".join(vars(r).values()) for r in records)
    return CharTokenizer.from_text(text + "ABCDEFGHIJKLMNOPQRSTUVWXYZ!")


def splits(records):
    """Splits with every record in each of train, val and test (the tests want all three)."""
    return Splits(list(records), list(records), list(records))


def tiny_gpt(vocab_size, block_size=192, dtype=np.float32, seed=0, n_layer=1, n_embd=16):
    """A GPT with GPT-2's initialisation, small enough for float64 gradchecks."""
    config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=2,
                       n_embd=n_embd)
    return GPT(config, np.random.default_rng(seed), dtype=dtype)
