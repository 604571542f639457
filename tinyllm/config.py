"""Configuration: the model's shape (GPTConfig), the run's knobs (TrainConfig), named presets,
and the typed `--key value` override helper the command line uses.

Everything is a dataclass field with a comment, nanoGPT's "all knobs in one place", but typed:
a misspelt or mistyped override fails loudly instead of being silently ignored.
"""
import argparse
import dataclasses
import inspect
import re
from dataclasses import dataclass

POSITIONS = ("learned", "rope", "sinusoidal")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")


@dataclass
class GPTConfig:
    vocab_size: int = 65  # number of distinct tokens (Tiny Shakespeare has 65 characters)
    block_size: int = 64  # the longest context: positions 0 .. block_size-1
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block; each gets n_embd // n_head channels
    n_embd: int = 128  # channels C of the residual stream
    dropout: float = 0.0  # dropout on embeddings and on each residual branch while training
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2 has them)
    tie_weights: bool = True  # the output head reuses the token embedding (Press & Wolf, 2017)
    pos: str = "learned"  # positions: "learned" table (GPT-2), "rope" rotations, "sinusoidal"
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (LLaMA)
    mlp: str = "gelu"  # "gelu": 4C hidden units (GPT-2); "swiglu": gated, ~8C/3 (LLaMA)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rope needs an even head size, got {self.n_embd // self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (("pos", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)!r}: choose from {allowed}")

    @property
    def head_size(self):
        return self.n_embd // self.n_head


@dataclass
class TrainConfig:
    out_dir: str = "out"  # where checkpoints, the eval log and samples are written
    data: str = ""  # a local text file; empty: $TINYLLM_DATA, else download Tiny Shakespeare
    dataset: str = ""  # a directory written by `tinyllm prepare`; used instead of `data`
    batch_size: int = 12  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = product)
    max_iters: int = 2000  # optimizer steps
    learning_rate: float = 1e-3  # peak learning rate, reached after warmup
    min_lr: float = 1e-4  # floor of the cosine decay
    warmup_iters: int = 100  # linear warmup steps
    lr_decay_iters: int = 2000  # the cosine reaches min_lr here (nanoGPT: = max_iters)
    weight_decay: float = 0.1  # AdamW's decoupled decay, on weight matrices only
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.99  # AdamW second-moment decay (0.99 for small data, as nanoGPT)
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables
    eval_interval: int = 250  # evaluate (and maybe checkpoint) every this many steps
    eval_iters: int = 200  # batches averaged per evaluation, for train and val each
    seed: int = 1337  # seeds initialisation, batch sampling and dropout
    val_fraction: float = 0.1  # the last part of the text held out for validation
    sample_tokens: int = 500  # characters printed from the trained model; 0 to skip

    def __post_init__(self):
        # Zeros here would divide by zero or silently train nothing; say so up front.
        for name in ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("learning_rate", "min_lr", "weight_decay", "grad_clip", "warmup_iters",
                     "lr_decay_iters", "sample_tokens"):
            value = getattr(self, name)
            if not value >= 0:  # also catches nan
                raise ValueError(f"--{_flag(name)} must be >= 0, got {value}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"--{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")


def _flag(name):
    return name.replace("_", "-")


PRESETS = {
    # nanoGPT's laptop configuration for Tiny Shakespeare (config/train_shakespeare_char.py
    # with the CPU overrides of its README's command line, eval_iters=20 among them: "a bit
    # more noisy but faster estimate"). Both presets keep GPTConfig's default bias=True, GPT-2's
    # layout; nanoGPT's train.py turns biases off (`--bias false` does the same here).
    "shakespeare-char-cpu": (
        dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0),
        dict(batch_size=12, max_iters=2000, lr_decay_iters=2000, learning_rate=1e-3,
             min_lr=1e-4, warmup_iters=100, beta2=0.99, eval_iters=20),
    ),
    # nanoGPT's GPU configuration: a "baby GPT" of ~10.7M parameters
    "shakespeare-char": (
        dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),
        dict(batch_size=64, max_iters=5000, lr_decay_iters=5000, learning_rate=1e-3,
             min_lr=1e-4, warmup_iters=100, beta2=0.99),
    ),
}


# Fine-tuning starts from a trained model: a lower learning rate, short runs, no decay of the
# weights it learnt (they are the point), evaluation on the whole held-out split every few steps.
FINETUNE_PRESETS = {
    "sft": dict(out_dir="out-sft", batch_size=8, max_iters=400, learning_rate=1e-4,
                min_lr=1e-5, warmup_iters=20, lr_decay_iters=400, weight_decay=0.0,
                beta2=0.999, eval_interval=50, sample_tokens=0),
    "dpo": dict(out_dir="out-dpo", batch_size=8, max_iters=200, learning_rate=2e-5,
                min_lr=2e-6, warmup_iters=10, lr_decay_iters=200, weight_decay=0.0,
                beta2=0.999, eval_interval=25, sample_tokens=0),
}


def preset(name):
    """(GPTConfig, TrainConfig) of a named preset; vocab_size is set once the data is known."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    model_fields, train_fields = PRESETS[name]
    return GPTConfig(**model_fields), TrainConfig(**train_fields)


CHOICES = {"pos": POSITIONS, "norm": NORMS, "mlp": MLPS}  # fields with a fixed set of values
# Model fields that fix the shape of the weights: a resumed or fine-tuned run cannot change them.
SHAPE_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias",
                "tie_weights", "pos", "norm", "mlp")


def field_comments(cls):
    """{field: the comment written beside it in this file}, so --help and the source say the
    same thing.

    >>> field_comments(TrainConfig)["grad_accum"]
    'micro-batches per optimizer step (effective batch = product)'
    """
    source = inspect.getsource(cls)
    return dict(re.findall(r"^    (\w+): \w+ = .*?  # (.*)$", source, flags=re.MULTILINE))


def add_config_flags(parser, *configs, skip=()):
    """Add a `--field-name VALUE` flag for every field of the given dataclass instances, except
    the fields named in `skip` (ones the command does not use: offering them would let a user
    set something that silently changes nothing).

    The flags default to None, so `apply_overrides` can tell a flag given from one absent; the
    help text is the field's comment, the value it has in `configs` (the chosen preset) and,
    for enumerated fields, the choices. The underscore spelling (`--max_iters`) is accepted too:
    see `tinyllm.cli.common.Parser`.
    """
    for config in configs:
        group = parser.add_argument_group(type(config).__name__)
        comments = field_comments(type(config))
        for field in (f for f in dataclasses.fields(config) if f.name not in skip):
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            group.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                               type=_CONVERTERS[kind], default=None,
                               choices=CHOICES.get(field.name),
                               metavar=None if field.name in CHOICES else kind.upper(),
                               help=f"{comments.get(field.name, '')} "
                                    f"(default: {getattr(config, field.name)!r})")


def apply_overrides(config, args):
    """A copy of `config` with every field that `args` (from argparse) gave a value for."""
    return dataclasses.replace(config, **given_fields(config, args))


def given_fields(config, args):
    """{field: value} of the fields of `config` that `args` sets."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config)
            if getattr(args, f.name, None) is not None}


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_CONVERTERS = {"int": int, "float": float, "str": str, "bool": _parse_bool}
