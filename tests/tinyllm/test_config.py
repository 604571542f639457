"""tinyllm/config.py: presets and typed overrides."""
import argparse

import pytest

from tinyllm.config import add_config_flags, apply_overrides, preset


def parse(argv):
    model, train = preset("shakespeare-char-cpu")
    parser = argparse.ArgumentParser()
    add_config_flags(parser, model, train)
    args = parser.parse_args(argv)
    return apply_overrides(model, args), apply_overrides(train, args)


def test_presets_are_nanogpts_configurations():
    model, train = preset("shakespeare-char-cpu")
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (4, 4, 128, 64)
    assert model.bias is True  # GPTConfig's default, GPT-2's layout
    assert (train.batch_size, train.max_iters, train.learning_rate) == (12, 2000, 1e-3)
    model, train = preset("shakespeare-char")
    assert (model.n_layer, model.n_embd, model.block_size, model.dropout) == (6, 384, 256, 0.2)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("gpt5")


def test_overrides_are_typed_and_only_given_fields_change():
    model, train = parse(["--n_layer", "6", "--bias", "false", "--learning_rate", "3e-4",
                          "--pos", "rope"])
    assert model.n_layer == 6 and model.bias is False and model.pos == "rope"
    assert train.learning_rate == 3e-4 and train.batch_size == 12


def test_invalid_values_fail_loudly():
    with pytest.raises(SystemExit):
        parse(["--bias", "maybe"])
    with pytest.raises(ValueError, match="choose from"):
        parse(["--norm", "batchnorm"])
