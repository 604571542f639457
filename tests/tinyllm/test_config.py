"""tinyllm/config.py: presets and typed overrides."""
import pytest

from tinyllm.cli.common import Parser
from tinyllm.config import (GPTConfig, TrainConfig, add_config_flags, apply_overrides,
                            field_comments, preset)


def parse(argv):
    model, train = preset("shakespeare-char-cpu")
    parser = Parser()
    add_config_flags(parser, model, train)
    args = parser.parse_args(argv)
    return apply_overrides(model, args), apply_overrides(train, args)


def test_presets_are_nanogpts_configurations():
    model, train = preset("shakespeare-char-cpu")
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (4, 4, 128, 64)
    assert model.bias is True  # GPTConfig's default, GPT-2's layout
    assert (train.batch_size, train.max_iters, train.learning_rate) == (12, 2000, 1e-3)
    assert train.eval_iters == 20  # the override of nanoGPT's CPU command line
    model, train = preset("shakespeare-char")
    assert (model.n_layer, model.n_embd, model.block_size, model.dropout) == (6, 384, 256, 0.2)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("gpt5")


def test_overrides_are_typed_and_only_given_fields_change():
    model, train = parse(["--n-layer", "6", "--bias", "false", "--learning_rate", "3e-4",
                          "--pos", "rope"])  # the underscore spelling is an alias
    assert model.n_layer == 6 and model.bias is False and model.pos == "rope"
    assert train.learning_rate == 3e-4 and train.batch_size == 12


def test_invalid_values_fail_loudly():
    with pytest.raises(SystemExit, match="expected true or false"):
        parse(["--bias", "maybe"])
    with pytest.raises(SystemExit, match="invalid choice: 'batchnorm'"):
        parse(["--norm", "batchnorm"])
    with pytest.raises(ValueError, match="choose from"):
        GPTConfig(norm="batchnorm")  # the dataclass checks too, for code that builds one


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "--batch-size must be positive"), ("grad_accum", 0, "--grad-accum"),
    ("eval_interval", 0, "--eval-interval"), ("learning_rate", -1e-3, "--learning-rate"),
    ("learning_rate", float("nan"), "--learning-rate"), ("beta2", 1.0, "--beta2"),
    ("val_fraction", 0.0, "--val-fraction")])
def test_train_config_refuses_values_that_would_divide_by_zero_or_mislead(field, value,
                                                                           message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_every_field_has_a_comment_for_its_help():
    for cls in (GPTConfig, TrainConfig):
        comments = field_comments(cls)
        assert all(comments.get(f) for f in cls.__dataclass_fields__), cls
