"""Hugging Face GPT-2 folders in and out: OpenAI's GPT-2 runs in tinyllm, and a GPT trained
here opens in `transformers` (GPT2LMHeadModel, GPT2TokenizerFast) unchanged.

A GPT-2 folder on the Hub holds four files that matter:
- config.json: the shape (n_layer, n_head, n_embd, n_positions, vocab_size) and a few switches
  (activation_function, layer_norm_epsilon, ...);
- model.safetensors: a JSON header giving each tensor's name, dtype, shape and byte range, then
  the raw bytes. Reading one cannot run code, unlike pytorch_model.bin, a pickle: we never
  open that;
- vocab.json + merges.txt: the byte-level BPE, in the formats of GPT-2's original encoder.json
  and vocab.bpe (tokenizer/tiktoken_files.py reads and writes them).

Our GPT keeps GPT-2's parameter names and layouts (model.py; GPT-2's Conv1D stores a weight as
(in, out), as our Linear does), so nothing is renamed or transposed. Files differ only in
packaging: some name tensors with a `transformer.` prefix and some without, older ones store
the causal-mask buffers `h.N.attn.bias` / `attn.masked_bias` (constants, skipped), and the
output head is usually absent because it is the token embedding (weight tying). As in
transformers, a stored `lm_head.weight` is used only if config.json says
`"tie_word_embeddings": false`; our GPT then keeps a separate head (tie_weights=False).

A folder from elsewhere is untrusted: config values are type- and range-checked, every tensor's
name, dtype and shape is checked against the config from the safetensors header before a single
parameter is allocated (the safetensors library checks the header against the file's size),
and a file that is a link leading out of the folder is refused.

Shapes: C n_embd, V vocab_size, T n_positions (our block_size), L n_layer.
Left out: other architectures, sharded weights (model-00001-of-0000N.safetensors), bfloat16
(NumPy has no such dtype), and reading tokenizer.json (transformers 5 saves only that one; the
Hub's GPT-2 folders also have vocab.json + merges.txt, which we read and write).
"""
import json
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from autograd import nn
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.tokenizer import BPETokenizer
from tinyllm.tokenizer.pretokenize import GPT2_PATTERN
from tinyllm.tokenizer.tiktoken_files import write_gpt2_files

CONFIG, WEIGHTS, VOCAB, MERGES = "config.json", "model.safetensors", "vocab.json", "merges.txt"
EOT = "<|endoftext|>"  # GPT-2's one special token: ends a document; also its bos and eos
EPS = nn.LayerNorm(1).eps  # our LayerNorm's epsilon, which GPT-2's layer_norm_epsilon must be
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # transformers' names for our (tanh) GELU
MAX_TEXT_BYTES = 64 << 20  # config/vocab/merges files; GPT-2's vocab.json is ~1 MB
SHAPE_FIELDS = ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd")

# One block's tensors, shapes in multiples of C: c_attn computes q, k, v side by side (C, 3C),
# the MLP widens to 4C and back. Every 2-D weight is (in, out).
BLOCK = {"ln_1.weight": (1,), "ln_1.bias": (1,),
         "attn.c_attn.weight": (1, 3), "attn.c_attn.bias": (3,),
         "attn.c_proj.weight": (1, 1), "attn.c_proj.bias": (1,),
         "ln_2.weight": (1,), "ln_2.bias": (1,),
         "mlp.c_fc.weight": (1, 4), "mlp.c_fc.bias": (4,),
         "mlp.c_proj.weight": (4, 1), "mlp.c_proj.bias": (1,)}
BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # causal masks, not parameters


class HFError(ValueError):
    """A Hugging Face folder we cannot read, or a model or tokenizer GPT-2's format cannot
    hold; the message names the file or field."""


def is_hf_dir(path):
    """Whether `path` looks like a Hugging Face GPT-2 folder (config.json + weights), so a
    `--checkpoint` argument can name one. A pickle-only folder counts: loading it then says
    why it is refused."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG).is_file() and any(
        (path / name).is_file() for name in (WEIGHTS, "pytorch_model.bin"))


# --- loading ------------------------------------------------------------------------------


def load_gpt2(path):
    """(GPT in eval mode, BPETokenizer) from a Hugging Face GPT-2 folder; HFError if the
    folder is incomplete, malformed or describes a model our GPT cannot be.

    Usage: `model, tok = load_gpt2(download_gpt2("gpt2"))` (hf_download.py).
    """
    folder = Path(path)
    config = config_from_hf(_read_json(folder, CONFIG), folder / CONFIG)
    tokenizer = _load_tokenizer(folder, config.vocab_size)
    try:
        with safe_open(_weights_file(folder), framework="np") as f:
            names = _check_tensors(f, config)  # our name -> name in the file
            model = GPT(config, rng=np.random.default_rng(0))
            for ours, theirs in names.items():  # one tensor at a time: no second full copy
                model.load_state_dict({ours: f.get_tensor(theirs).astype(np.float32)},
                                      strict=False)
    except SafetensorError as e:
        raise HFError(f"{folder / WEIGHTS}: not a readable safetensors file ({e})") from None
    return model.eval(), tokenizer


def config_from_hf(cfg, where=CONFIG):
    """Our GPTConfig from the dict of a Hugging Face GPT-2 config.json, or HFError naming
    the field our GPT cannot express.

    >>> config_from_hf({"n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 16,
    ...                 "vocab_size": 300}).n_layer
    2
    """
    if not isinstance(cfg, dict):
        raise HFError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    for field in SHAPE_FIELDS:
        value = cfg.get(field)
        if type(value) is not int or value <= 0:  # `type is`: a JSON true is no layer count
            raise HFError(f"{where}: {field} must be a positive integer, got {value!r}")
    _check_switches(cfg, where)
    dropout = cfg.get("resid_pdrop", 0.1)  # our one dropout rate; attention has none
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise HFError(f"{where}: resid_pdrop must be a number in [0, 1), got {dropout!r}")
    try:
        return GPTConfig(vocab_size=cfg["vocab_size"], block_size=cfg["n_positions"],
                         n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"],
                         dropout=float(dropout),
                         tie_weights=cfg.get("tie_word_embeddings", True))
    except ValueError as e:  # e.g. n_embd not divisible by n_head
        raise HFError(f"{where}: {e}") from None


def _check_switches(cfg, where):
    """The fields that change GPT-2's computation must have the values our GPT computes."""
    ours = {"model_type": ("gpt2",), "activation_function": TANH_GELUS,
            "layer_norm_epsilon": (EPS,), "scale_attn_weights": (True,),
            "scale_attn_by_inverse_layer_idx": (False,), "add_cross_attention": (False,),
            "n_inner": (None, 4 * cfg["n_embd"]), "tie_word_embeddings": (True, False)}
    for field, allowed in ours.items():
        value = cfg.get(field, allowed[0])
        # `is` for bools: JSON's 1 must not pass as true, nor 0 as false
        if not any(value is a if isinstance(a, bool) else value == a for a in allowed):
            raise HFError(f"{where}: {field}={value!r} is not something tinyllm's GPT can "
                          f"compute (it can: {', '.join(map(repr, allowed))})")


def expected_tensors(config):
    """{name in GPT-2's layout (no `transformer.` prefix): shape} for a GPTConfig.

    >>> len(expected_tensors(GPTConfig(n_layer=2))), expected_tensors(GPTConfig())["wpe.weight"]
    (28, (64, 128))
    """
    C, V, T = config.n_embd, config.vocab_size, config.block_size
    shapes = {"wte.weight": (V, C), "wpe.weight": (T, C), "ln_f.weight": (C,),
              "ln_f.bias": (C,)}
    for i in range(config.n_layer):
        shapes.update({f"h.{i}.{name}": tuple(k * C for k in mult)
                       for name, mult in BLOCK.items()})
    if not config.tie_weights:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def _check_tensors(f, config):
    """Check the names, dtypes and shapes in an open safetensors file against the config;
    return {our parameter name: name in the file}. Reads the header only."""
    found = {}  # name without prefix -> name in the file
    for name in f.keys():
        short = name.removeprefix("transformer.")
        if BUFFER.fullmatch(short) or (short == "lm_head.weight" and config.tie_weights):
            continue  # masks are constants; a tied head is the embedding again
        if short in found:
            raise HFError(f"{WEIGHTS}: {short} is stored twice ({found[short]} and {name})")
        found[short] = name
    # Checked before expected_tensors, whose size grows with n_layer: a config claiming
    # 10**9 layers must fail here, not after building a billion names.
    per_block = len(BLOCK)
    if len(found) < per_block * config.n_layer:
        raise HFError(f"{CONFIG} says n_layer={config.n_layer}, but {WEIGHTS} holds only "
                      f"{len(found)} tensors (a GPT-2 of that depth has more than "
                      f"{per_block * config.n_layer})")
    expected = expected_tensors(config)
    _check_names(set(expected), set(found))
    for short, shape in expected.items():
        _check_tensor(f.get_slice(found[short]), found[short], shape)
    return {("" if short.startswith("lm_head") else "transformer.") + short: found[short]
            for short in expected}


def _check_names(expected, found):
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing:
        raise HFError(f"{WEIGHTS} lacks {len(missing)} tensors of a GPT-2 this shape, "
                      f"e.g. {missing[:3]}")
    if unexpected:
        raise HFError(f"{WEIGHTS} has tensors a GPT-2 of the configured shape does not, "
                      f"e.g. {unexpected[:3]}")


def _check_tensor(tensor, name, shape):
    if tensor.get_dtype() not in ("F32", "F16"):
        raise HFError(f"{WEIGHTS}: {name} is {tensor.get_dtype()}; tinyllm reads float32 and "
                      "float16 (converted to float32)")
    if tuple(tensor.get_shape()) != shape:
        raise HFError(f"{WEIGHTS}: {name} has shape {tuple(tensor.get_shape())}, but "
                      f"{CONFIG} implies {shape}")


def _load_tokenizer(folder, vocab_size):
    """The BPETokenizer of vocab.json + merges.txt, checked to fit the model's vocabulary."""
    if not (folder / VOCAB).exists() and (folder / "tokenizer.json").exists():
        raise HFError(f"{folder} holds tokenizer.json but no {VOCAB} + {MERGES}, which "
                      "tinyllm reads (transformers 5 saves only tokenizer.json; copy the two "
                      "files of the model it was fine-tuned from, e.g. gpt2)")
    vocab, merges = _inside(folder, VOCAB), _inside(folder, MERGES)
    for path in (vocab, merges):
        _read_text(folder, path.name)  # existence and size checks before parsing
    try:
        tokenizer = BPETokenizer.from_gpt2(vocab, merges)
    except (ValueError, KeyError, TypeError) as e:
        raise HFError(f"{folder}: {VOCAB} + {MERGES} are not a GPT-2 tokenizer ({e})") from None
    # GPT-2 applies merges in the order of merges.txt; ours in id order. Same thing only if
    # the ids grow down the file (they do in every file the GPT-2 tooling writes).
    ids = list(tokenizer.merges.values())  # in file order
    if ids != sorted(ids):
        raise HFError(f"{folder / MERGES}: merge ids are not increasing down the file, so "
                      "tinyllm would merge in another order than GPT-2 does")
    if tokenizer.vocab_size > vocab_size:
        raise HFError(f"{folder / VOCAB} has ids up to {tokenizer.vocab_size - 1}, but "
                      f"{CONFIG} gives vocab_size={vocab_size}")
    return tokenizer


def _weights_file(folder):
    if not (folder / WEIGHTS).exists() and (folder / "pytorch_model.bin").exists():
        raise HFError(f"{folder} holds only pytorch_model.bin, a pickle, which can run code "
                      f"when opened; tinyllm reads {WEIGHTS} only (convert it where you trust "
                      "the file, e.g. save_pretrained(..., safe_serialization=True))")
    return _inside(folder, WEIGHTS)


def _inside(folder, name):
    """folder/name, refusing a missing file and a link that leads out of the folder."""
    path = folder / name
    if not path.is_file():
        raise HFError(f"{folder} has no {name}: not a Hugging Face GPT-2 folder")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise HFError(f"{path} links to {path.resolve()}, outside the folder; refused")
    return path


def _read_json(folder, name):
    try:
        return json.loads(_read_text(folder, name))
    except json.JSONDecodeError as e:
        raise HFError(f"{folder / name} is not valid JSON ({e})") from None


def _read_text(folder, name):
    path = _inside(folder, name)
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise HFError(f"{path} is {path.stat().st_size} bytes; a GPT-2 {name} is far smaller")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HFError(f"{path} is not UTF-8 text ({e})") from None


# --- saving -------------------------------------------------------------------------------


def save_gpt2(model, tokenizer, path):
    """Write a Hugging Face GPT-2 folder: config.json, model.safetensors, vocab.json,
    merges.txt and tokenizer_config.json. HFError, naming the field, for what GPT-2 cannot
    hold; a bias-free model (bias=False) is written with zero biases, which compute the same.

    Usage: `save_gpt2(model, tok, "out/hf")`, then in transformers
    `GPT2LMHeadModel.from_pretrained("out/hf")` and `GPT2TokenizerFast.from_pretrained(...)`
    give the same logits and token ids.
    """
    config = model.config
    _check_exportable(config, tokenizer)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    specials = tokenizer.special_tokens
    ordinary = {i: b for i, b in tokenizer.vocab.items() if i not in specials.values()}
    try:
        write_gpt2_files(folder / VOCAB, folder / MERGES, ordinary, tokenizer.merges, specials)
    except ValueError as e:  # two tokens with the same text
        raise HFError(f"{folder / VOCAB}: {e}") from None
    save_file(_export_tensors(model), str(folder / WEIGHTS), metadata={"format": "pt"})
    _write_json(folder / CONFIG, hf_config(config, tokenizer))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config(config, tokenizer))


def _check_exportable(config, tokenizer):
    for field, gpt2 in (("pos", "learned"), ("norm", "layernorm"), ("mlp", "gelu")):
        if getattr(config, field) != gpt2:
            raise HFError(f"GPTConfig.{field}={getattr(config, field)!r}: Hugging Face's "
                          f"GPT-2 has only {field}={gpt2!r}")
    if not isinstance(tokenizer, BPETokenizer):
        raise HFError(f"the tokenizer is a {type(tokenizer).__name__}; a GPT-2 folder holds "
                      "a byte-level BPE (vocab.json + merges.txt)")
    if tokenizer.pattern != GPT2_PATTERN:
        raise HFError("BPETokenizer.pattern is not GPT-2's split pattern, the only one "
                      "GPT2TokenizerFast splits text with")
    if tokenizer.vocab_size > config.vocab_size:
        raise HFError(f"the tokenizer has {tokenizer.vocab_size} ids, more than the model's "
                      f"vocab_size={config.vocab_size}")


def _export_tensors(model):
    """{name: float32 array} under Hugging Face's GPT2LMHeadModel names."""
    state = model.state_dict()
    tensors = {}
    for short, shape in expected_tensors(model.config).items():
        name = short if short == "lm_head.weight" else "transformer." + short
        # a bias-free model has no bias arrays: zeros add nothing, so the outputs agree
        tensors[name] = np.ascontiguousarray(state.get(name, np.zeros(shape)), np.float32)
    return tensors


def hf_config(config, tokenizer):
    """The config.json dict transformers' GPT2Config reads for our GPTConfig."""
    eot = tokenizer.special_tokens.get(EOT)  # None (JSON null) if the tokenizer has none
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
            "vocab_size": config.vocab_size, "n_positions": config.block_size,
            "n_ctx": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": None, "activation_function": TANH_GELUS[0],
            "layer_norm_epsilon": EPS, "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout, "attn_pdrop": 0.0,  # we drop no attention weights
            "initializer_range": 0.02, "scale_attn_weights": True,
            "tie_word_embeddings": config.tie_weights, "bos_token_id": eot, "eos_token_id": eot}


def _tokenizer_config(config, tokenizer):
    """tokenizer_config.json: which tokens are special. Without it GPT2TokenizerFast would
    add an <|endoftext|> of its own to a vocabulary that lacks one."""
    eot = EOT if EOT in tokenizer.special_tokens else None
    return {"tokenizer_class": "GPT2Tokenizer", "model_max_length": config.block_size,
            "add_prefix_space": False, "bos_token": eot, "eos_token": eot, "unk_token": eot,
            "additional_special_tokens": [s for s in tokenizer.special_tokens if s != EOT]}


def _write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
