"""LoRA for the GPT: which layers get adapters, and adapter files saved apart from their base.

The layer itself is autograd.nn.LoRALinear (y = x W + b + (alpha / r) x A B, W frozen, B = 0 at
the start); `apply_lora` wraps the Linears named by `targets` in every block. Fine-tuning then
trains r (in + out) numbers per adapted layer, and AdamW keeps moments for those alone
(optim.param_groups leaves frozen weights out), which is where the memory goes.

A run's checkpoints hold the whole adapted model (base weights under their usual names, plus
`...lora_A` / `...lora_B`), so `--resume` is exact; `adapter.npz` beside them holds only the
adapters and the path of their base, a small file to share or to apply to the base later.
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from autograd.nn import apply_lora

GPT_LINEARS = ("c_attn", "c_proj", "c_fc")  # attention's qkv and output, the MLP's two


@dataclass(frozen=True)
class LoRASpec:
    """Low-rank adapters on the Linears named by `targets`, of rank r and scale alpha / r."""

    rank: int = 8  # r: the rank of the update A B
    alpha: float = 16.0  # the update is scaled by alpha / rank
    targets: tuple = ("c_attn", "c_proj")  # Linear names (in each block) to adapt

    def __post_init__(self):
        if not 0 < self.rank <= 4096:
            raise ValueError(f"--lora-rank must be in 1..4096, got {self.rank}")
        if not self.alpha > 0:
            raise ValueError(f"--lora-alpha must be positive, got {self.alpha}")
        unknown = [t for t in self.targets if t.split(".")[-1] not in GPT_LINEARS]
        if not self.targets or unknown:
            raise ValueError(f"--lora-targets {','.join(self.targets)}: choose among "
                             f"{', '.join(GPT_LINEARS)} (or attn.c_proj / mlp.c_proj)")

    @classmethod
    def from_dict(cls, data):
        """The spec a checkpoint's JSON recorded (a ValueError if it is malformed)."""
        if not isinstance(data, dict) or set(data) != {"rank", "alpha", "targets"}:
            raise ValueError(f"not a LoRA spec: {data!r}")
        if not isinstance(data["targets"], list) or not all(
                isinstance(t, str) for t in data["targets"]):
            raise ValueError(f"LoRA targets must be a list of names, got {data['targets']!r}")
        if not isinstance(data["rank"], int) or not isinstance(data["alpha"], (int, float)):
            raise ValueError(f"LoRA rank and alpha must be numbers, got {data!r}")
        return cls(data["rank"], float(data["alpha"]), tuple(data["targets"]))

    def to_dict(self):
        return dict(dataclasses.asdict(self), targets=list(self.targets))

    def adapt(self, model, rng):
        """Freeze `model` and wrap its targeted Linears in LoRALinear layers, in place."""
        return apply_lora(model, self.targets, self.rank, self.alpha, rng)


def adapter_path(out_dir):
    """Where a LoRA run writes its adapters alone."""
    return Path(out_dir) / "adapter.npz"
