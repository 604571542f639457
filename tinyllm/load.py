"""Loading a model from wherever it was saved: a tinyllm checkpoint file, a run folder holding
one, a LoRA adapter file (with the base it names), or a Hugging Face GPT-2 folder.

Every command that takes `--checkpoint` (and fine-tuning's `--init`) goes through
`load_model`, so each of them accepts all three. A run folder's `best.npz` (lowest validation
loss) is preferred to its `ckpt.npz` (the latest state).
"""
from pathlib import Path

import numpy as np

from autograd.nn import load_lora_state_dict, merge_lora
from tinyllm.checkpoint import (CheckpointError, load_adapter, load_checkpoint, read_meta,
                                tokenizer_bytes)
from tinyllm.config import GPTConfig
from tinyllm.finetune.lora import LoRASpec
from tinyllm.model import GPT


def find_checkpoint(path):
    """The checkpoint file `path` names: the file itself, or a run folder's best.npz or
    ckpt.npz. Raises CheckpointError when there is none."""
    path = Path(path)
    for candidate in (path, path / "best.npz", path / "ckpt.npz"):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"no checkpoint at {path} (expected a .npz file, a run folder holding "
                          "best.npz or ckpt.npz, or a Hugging Face GPT-2 folder)")


def load_model(path, base=None):
    """(model, tokenizer, meta) from a checkpoint file, a run folder or a Hugging Face GPT-2
    folder (meta is then {"source": "huggingface"}: no training state comes with it). A GPT-2
    name such as "gpt2" that is not a path names the folder `tinyllm download` fills. LoRA
    adapters, from a fine-tuning run or an adapter file, come folded into the weights. An
    adapter file needs `base`, the model it adapts: the path recorded in a file from
    elsewhere is not followed (only a GPT-2 name is)."""
    from tinyllm import hf  # only when asked: it imports safetensors
    from tinyllm.hf_download import MODELS, download_gpt2

    if str(path) in MODELS and not Path(path).exists():
        path = download_gpt2(str(path))  # from the cache, or downloaded into it
    if hf.is_hf_dir(path):
        model, tokenizer = hf.load_gpt2(path)
        return model, tokenizer, {"source": "huggingface"}
    file = find_checkpoint(path)
    if "adapter_of" in read_meta(file):
        return _load_adapted(file, base)
    model_state, _, meta, tokenizer = load_checkpoint(file)
    model = GPT(GPTConfig(**meta["model_config"]))
    if "lora" in meta:  # a LoRA run: rebuild its adapters, load, then fold them in
        LoRASpec.from_dict(meta["lora"]).adapt(model, np.random.default_rng(0))
    model.load_state_dict(model_state)
    merge_lora(model)
    return model, tokenizer, meta


def _load_adapted(file, base):
    """An adapter file's base model (loaded as any model is) with its adapters folded in."""
    from tinyllm.hf_download import MODELS

    adapters, meta, tokenizer = load_adapter(file)
    recorded = meta["adapter_of"]
    if base is None and recorded not in MODELS:
        raise CheckpointError(f"{file} holds LoRA adapters trained on {recorded}: pass that "
                              "model as --base")
    model, base_tokenizer, _ = load_model(base or recorded)
    if model.config != GPTConfig(**meta["model_config"]):
        raise CheckpointError(f"{file}: the base {base or recorded} has another model shape")
    if tokenizer_bytes(base_tokenizer) != tokenizer_bytes(tokenizer):
        raise CheckpointError(f"{file}: the base {base or recorded} has another tokenizer")
    LoRASpec.from_dict(meta["lora"]).adapt(model, np.random.default_rng(0))
    load_lora_state_dict(model, adapters)
    merge_lora(model)
    return model, tokenizer, meta


def source_name(path):
    """How a run records the model it started from: a GPT-2 name as given (it names the
    download cache wherever the run resumes), any other path made absolute."""
    from tinyllm.hf_download import MODELS

    if str(path) in MODELS and not Path(path).exists():
        return str(path)
    return str(Path(path).resolve())
