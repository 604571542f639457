"""Checkpoints: everything needed to continue a run exactly, in one pickle-free file.

A checkpoint is a NumPy .npz archive of plain arrays: the model's state dict under `model.*`,
the optimizer's under `optim.*`, the tokenizer's own save file as bytes, and one JSON document
(configs, step, best validation loss, the random generators' states) stored as UTF-8 bytes.
Tied weights (the output head reusing the token embedding) are stored once, under the
embedding's name, and handed back under both names. Version 1 files stored both copies; they
still load when the copies are equal, and are refused when they differ (which copy a model
ended up with would otherwise depend on the order of a set).

A checkpoint may come from anywhere, so reading trusts nothing in it:
- the archive is read through npz.read_arrays, never np.load (see npz.py for why);
- the model config must have GPTConfig's fields with their types, and match the stored
  arrays name for name and shape for shape (model.expected_shapes, plus a LoRA run's adapters)
  before any model is built. block_size also sizes the rope / sinusoidal tables, computed, not
  stored, so it is capped (MAX_BLOCK_SIZE), and those tables too (MAX_TABLE_SIZE values);
- weights must be finite floats; the optimizer state must fit them (AdamW's layout);
- the tokenizer must load (its own checks) and its ids must fit the model's vocabulary.
Every failure is a CheckpointError with a one-line message naming the file. Writes are atomic
and durable (npz.write_atomic).

A LoRA adapter file (`adapter.npz`, finetune/lora.py) is the same kind of archive with the
adapters alone under `model.*` and meta["adapter_of"], the model they were trained on.
"""
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from tinyllm.config import GPTConfig, TrainConfig
from autograd.nn import lora_state_dict
from tinyllm.finetune.lora import GPT_LINEARS, LoRASpec
from tinyllm.model import expected_shapes, tied_names
from tinyllm.npz import ArchiveError, read_arrays, write_atomic
from tinyllm.tokenizer import TOKENIZERS, TokenizerError

FORMAT_VERSION = 2  # 2: tied weights stored once
READABLE_VERSIONS = (1, 2)
MAX_BLOCK_SIZE = 1 << 20  # positions; a config asking for more is refused
MAX_TABLE_SIZE = 1 << 25  # block_size * n_embd for the computed (not stored) position tables


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, corrupt, of another version,
    or with contents that do not fit together (config vs. arrays, tokenizer vs. vocabulary)."""


# --- writing -------------------------------------------------------------------------------


def save_checkpoint(path, model_state, optim_state, meta, tokenizer):
    """Write one checkpoint atomically. `meta` must be JSON-serialisable and hold the model's
    config as meta["model_config"] (a dict of GPTConfig's fields); the model state is checked
    against it, so a file that would not load is never written."""
    path = Path(path)
    config = validate_model_state(meta.get("model_config"), model_state, _lora_spec(meta))
    aliases = tied_names(config)
    arrays = {f"model.{k}": v for k, v in model_state.items() if k not in aliases}
    arrays.update({f"optim.{k}": v for k, v in optim_state.items()})
    meta = dict(meta, format_version=FORMAT_VERSION, tokenizer_type=type(tokenizer).__name__)
    arrays["meta"] = _bytes_array(json.dumps(meta).encode("utf-8"))
    arrays["tokenizer"] = _bytes_array(tokenizer_bytes(tokenizer))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, arrays)


def _bytes_array(data):
    return np.frombuffer(data, dtype=np.uint8)


def tokenizer_bytes(tokenizer):
    """The tokenizer's own save format, through a temporary file (save takes a path). Two
    tokenizers are the same exactly when these bytes are."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(Path(tmp) / "tokenizer")
        return (Path(tmp) / "tokenizer").read_bytes()


# --- reading -------------------------------------------------------------------------------


def load_checkpoint(path):
    """(model_state, optim_state, meta, tokenizer) from a file written by save_checkpoint.

    Everything is checked before it is returned (see the module docstring), so
    `GPT(GPTConfig(**meta["model_config"])).load_state_dict(model_state)` is then safe: the
    config is valid and the state has every weight, tied ones under both names.
    """
    try:
        return _load(path)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _load(path):
    try:
        arrays = read_arrays(path)
    except ArchiveError as e:
        raise CheckpointError(str(e).replace("archive", "checkpoint")) from None
    meta = _read_meta(arrays)
    other = [k for k in arrays if k not in ("meta", "tokenizer")
             and not k.startswith(("model.", "optim."))]
    if other:
        raise CheckpointError(f"unexpected members {_few(sorted(other))}")
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim.")}
    lora = _lora_spec(meta)
    config = validate_model_state(meta.get("model_config"), model, lora)
    for alias, source in tied_names(config).items():
        model[alias] = model[source]
    _check_optim_state(optim, _trained_shapes(config, lora))
    _check_run_meta(meta)
    tokenizer = _tokenizer_from_bytes(meta.get("tokenizer_type"), arrays["tokenizer"])
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(f"its tokenizer has {tokenizer.vocab_size} ids, more than the "
                              f"model's vocab_size {config.vocab_size}")
    return model, optim, meta, tokenizer


def read_meta(path):
    """A checkpoint's (or adapter file's) JSON metadata alone, without reading its arrays."""
    try:
        return _read_meta(read_arrays(path, only=("meta", "tokenizer")))
    except (ArchiveError, CheckpointError) as e:
        raise CheckpointError(f"{path}: {e}") from None


# --- LoRA adapter files ----------------------------------------------------------------------


def save_adapter(path, model, spec, base, tokenizer):
    """Write `model`'s LoRA adapters alone (a LoRASpec `spec`), with the path or name of the
    model they were trained on, `base`; `load_adapter` reads them back."""
    meta = {"adapter_of": str(base), "lora": spec.to_dict(),
            "model_config": dataclasses.asdict(model.config),
            "format_version": FORMAT_VERSION, "tokenizer_type": type(tokenizer).__name__}
    arrays = {f"model.{k}": v for k, v in lora_state_dict(model).items()}
    arrays["meta"] = _bytes_array(json.dumps(meta).encode("utf-8"))
    arrays["tokenizer"] = _bytes_array(tokenizer_bytes(tokenizer))
    write_atomic(Path(path), arrays)


def load_adapter(path):
    """(adapters {name: array}, meta, tokenizer) of a file written by save_adapter, checked
    like a checkpoint: the config, the spec, and exactly the adapters they imply."""
    try:
        arrays = read_arrays(path)
        meta = _read_meta(arrays)
        if not isinstance(meta.get("adapter_of"), str) or "lora" not in meta:
            raise CheckpointError("not a LoRA adapter file")
        config = _config_from_dict(GPTConfig, meta.get("model_config"), "model_config")
        _check_sizes_warranted(config, len(arrays))
        shapes = _adapter_shapes(expected_shapes(config), _lora_spec(meta))
        adapters = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
        if set(adapters) != set(shapes) or len(arrays) != len(adapters) + 2:
            raise CheckpointError("its arrays are not the adapters its config and spec imply")
        for name, array in adapters.items():
            _check_weight(name, array, shapes[name])
        return adapters, meta, _tokenizer_from_bytes(meta["tokenizer_type"], arrays["tokenizer"])
    except (ArchiveError, CheckpointError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def _read_meta(arrays):
    for name in ("meta", "tokenizer"):
        if name not in arrays or arrays[name].dtype != np.uint8 or arrays[name].ndim != 1:
            raise CheckpointError(f"not a tinyllm checkpoint (no {name!r} bytes)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:  # ValueError: bad UTF-8 or JSON
        raise CheckpointError(f"its JSON metadata is corrupt ({_one_line(e)})") from None
    if not isinstance(meta, dict):
        raise CheckpointError("its JSON metadata is not an object")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"format version {_short(meta.get('format_version'))}; this "
                              f"tinyllm reads versions {READABLE_VERSIONS}")
    return meta


def _tokenizer_from_bytes(kind, data):
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise CheckpointError(f"unknown tokenizer type {_short(kind)}")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "tokenizer"
        file.write_bytes(data.tobytes())
        try:
            return TOKENIZERS[kind].load(file)
        except TokenizerError as e:  # its message names the temporary file: drop that
            message = _one_line(e).replace(f"{file}: ", "")
            raise CheckpointError(f"its tokenizer is corrupt: {message}") from None


# --- checking ------------------------------------------------------------------------------


def validate_model_state(model_config, model_state, lora=None):
    """The GPTConfig that `model_config` (a dict, as JSON gives it) describes, after checking
    that `model_state` {name: array} holds exactly that model's weights (and, given `lora`, a
    fine-tuning run's LoRASpec, the adapters it adds); else CheckpointError.

    Checked, without allocating anything the arrays do not already take: the config's fields
    and types; that the arrays warrant its sizes (n_layer, and block_size for the position
    tables a model computes); every expected name present with its exact shape, as a finite
    float array, and nothing else. A tied weight may be missing (it is stored once) or equal
    to its twin.

    >>> config = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=2)
    >>> from tinyllm.model import GPT
    >>> state = GPT(config).state_dict()
    >>> validate_model_state(dataclasses.asdict(config), state) == config
    True
    >>> validate_model_state({**dataclasses.asdict(config), "n_embd": 4}, state)
    Traceback (most recent call last):
    ...
    tinyllm.checkpoint.CheckpointError: transformer.wte.weight has shape (5, 2), not (5, 4)
    """
    config = _config_from_dict(GPTConfig, model_config, "model_config")
    _check_sizes_warranted(config, len(model_state))
    shapes, aliases = expected_shapes(config), tied_names(config)
    shapes |= _adapter_shapes(shapes, lora)
    missing = sorted(set(shapes) - set(aliases) - set(model_state))
    unexpected = sorted(set(model_state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(f"the weights do not fit the model config: missing "
                              f"{_few(missing)}, unexpected {_few(unexpected)}")
    for name, array in model_state.items():
        _check_weight(name, array, shapes[name])
    for alias, source in aliases.items():
        if alias in model_state and not np.array_equal(model_state[alias], model_state[source]):
            raise CheckpointError(f"the tied weights {alias} and {source} differ")
    return config


def _check_sizes_warranted(config, n_arrays):
    # The arrays are in memory already; sizes that are not read off them must be bounded here.
    if config.n_layer > n_arrays:  # each block stores several arrays
        raise CheckpointError(f"n_layer={config.n_layer} but only {n_arrays} weight arrays")
    if config.block_size > MAX_BLOCK_SIZE:
        raise CheckpointError(f"block_size={config.block_size} exceeds {MAX_BLOCK_SIZE}")
    table = config.block_size * config.n_embd
    if config.pos != "learned" and table > MAX_TABLE_SIZE:
        raise CheckpointError(f"{config.pos} tables of block_size * n_embd = {table} values "
                              f"exceed {MAX_TABLE_SIZE}")


def _check_weight(name, array, shape):
    if array.shape != shape:
        raise CheckpointError(f"{name} has shape {array.shape}, not {shape}")
    if array.dtype.kind != "f":
        raise CheckpointError(f"{name} is {array.dtype}, not a float array")
    if not np.isfinite(array).all():
        raise CheckpointError(f"{name} holds inf or nan")


def _lora_spec(meta):
    """The LoRASpec of a fine-tuning run's meta["lora"], or None for a run without one."""
    try:
        return LoRASpec.from_dict(meta["lora"]) if "lora" in meta else None
    except ValueError as e:
        raise CheckpointError(f"meta lora: {_one_line(e)}") from None


def _adapter_shapes(shapes, spec):
    """{name: shape} of the adapters LoRASpec.adapt adds: lora_A (in, r) and lora_B (r, out)
    beside each targeted Linear's weight (in, out), matched as autograd.nn.apply_lora does."""
    adapters = {}
    for name, shape in shapes.items() if spec else ():
        path = name.removesuffix(".weight")  # a Linear's weight is (in, out); its bias, (out,)
        if path.rsplit(".", 1)[-1] in GPT_LINEARS and any(
                path == t or path.endswith("." + t) for t in spec.targets):
            n_in, n_out = shape
            if spec.rank > min(n_in, n_out):
                raise CheckpointError(f"LoRA rank {spec.rank} exceeds {path}'s {n_in}x{n_out}")
            adapters[f"{path}.lora_A"] = (n_in, spec.rank)
            adapters[f"{path}.lora_B"] = (spec.rank, n_out)
    return adapters


def _trained_shapes(config, spec):
    """The shapes of the weights the optimizer keeps moments for: every weight once (tied
    ones once), or with LoRA the adapters alone (the base is frozen)."""
    shapes = expected_shapes(config)
    if spec is not None:
        return list(_adapter_shapes(shapes, spec).values())
    return [shape for name, shape in shapes.items() if name not in tied_names(config)]


def _check_optim_state(optim, shapes):
    """Empty, or AdamW's: step `t`, `lr`, and moments m.i, v.i fitting the trained weights'
    `shapes` (in the optimizer's own order)."""
    if not optim:
        return
    names = {"t", "lr"} | {f"{m}.{i}" for m in "mv" for i in range(len(shapes))}
    if set(optim) != names:
        raise CheckpointError(f"the optimizer state does not fit the {len(shapes)} weights")
    if optim["t"].shape != () or optim["t"].dtype.kind not in "iu" or optim["t"] < 0:
        raise CheckpointError("the optimizer's step count t is not a count")
    moments = [optim[f"m.{i}"] for i in range(len(shapes))]
    if sorted(m.shape for m in moments) != sorted(shapes):
        raise CheckpointError("the optimizer's moments do not have the weights' shapes")
    for i, m in enumerate(moments):
        _check_weight(f"optimizer state m.{i}", m, m.shape)
        _check_weight(f"optimizer state v.{i}", optim[f"v.{i}"], m.shape)
        if (optim[f"v.{i}"] < 0).any():  # a second moment is a mean of squares
            raise CheckpointError(f"optimizer state v.{i} is negative")
    _check_weight("the optimizer's lr", optim["lr"], ())


def _check_run_meta(meta):
    """The training state's fields that are present have their types (train.restore uses
    them): counts, losses, the TrainConfig, and the random generators' states."""
    for name, kind in {"step": int, "tokens": int, "best_val": float, "elapsed_s": float}.items():
        if name in meta and not _has_type(meta[name], kind):
            raise CheckpointError(f"meta {name}={_short(meta[name])} is not a {kind.__name__}")
    if any(meta.get(name, 0) < 0 for name in ("step", "tokens")):
        raise CheckpointError("a negative step or token count")
    if "train_config" in meta:
        _config_from_dict(TrainConfig, meta["train_config"], "train_config")
    for name in ("batch_rng", "model_rng"):
        if name in meta:
            try:  # the generators' own setter checks the state fully
                np.random.default_rng().bit_generator.state = meta[name]
            except (TypeError, ValueError, KeyError, OverflowError):
                raise CheckpointError(f"meta {name} is not a random generator's state") from None


def _config_from_dict(cls, data, what):
    """cls(**data) after checking every key is a field and every value has its field's type
    (an int field takes no float or bool; a float field takes an int). A missing field takes
    its default, so files from before a field was added still load."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} is missing or not a JSON object")
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise CheckpointError(f"{what} has unknown fields {_few(unknown)}")
    for name, value in data.items():
        if not _has_type(value, types[name]):
            raise CheckpointError(f"{what}.{name}={_short(value)} is not a "
                                  f"{types[name].__name__}")
    try:
        return cls(**data)
    except ValueError as e:  # the dataclass's own range checks
        raise CheckpointError(f"{what}: {_one_line(e)}") from None


def _has_type(value, kind):
    if kind is float:
        return type(value) in (int, float)
    return type(value) is kind  # `is`: True is not an int here, nor 3.0


def _one_line(error):
    return " ".join(str(error).split())[:300]


def _short(value):
    return repr(value)[:60]


def _few(names):
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if names[3:] else "") or "none"
