"""Loading a model from wherever it was saved: a tinyllm checkpoint file, a run folder holding
one, or a Hugging Face GPT-2 folder.

Every command that takes `--checkpoint` (and fine-tuning's `--init`) goes through
`load_model`, so each of them accepts all three. A run folder's `best.npz` (lowest validation
loss) is preferred to its `ckpt.npz` (the latest state).
"""
from pathlib import Path

from tinyllm.checkpoint import CheckpointError, load_checkpoint
from tinyllm.config import GPTConfig
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


def load_model(path):
    """(model, tokenizer, meta) from a checkpoint file, a run folder or a Hugging Face GPT-2
    folder (meta is then {"source": "huggingface"}: no training state comes with it). A GPT-2
    name such as "gpt2" that is not a path names the folder `tinyllm download` fills."""
    from tinyllm import hf  # only when asked: it imports safetensors
    from tinyllm.hf_download import MODELS, download_gpt2

    if str(path) in MODELS and not Path(path).exists():
        path = download_gpt2(str(path))  # from the cache, or downloaded into it
    if hf.is_hf_dir(path):
        model, tokenizer = hf.load_gpt2(path)
        return model, tokenizer, {"source": "huggingface"}
    model_state, _, meta, tokenizer = load_checkpoint(find_checkpoint(path))
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(model_state)
    return model, tokenizer, meta
