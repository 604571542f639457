"""The same GPT in PyTorch, for benchmarks only: identical architecture and initial weights.

Pre-norm blocks, tanh-GELU MLP, causal scaled_dot_product_attention, learned positions, tied
output head — tinyllm's default variant — so a step of each does the same arithmetic.
`from_tinyllm` copies a tinyllm GPT's weights in (our Linear weights are (in, out), PyTorch's
(out, in), hence the transposes), which also lets the benchmark check both give the same loss.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = nn.Embedding(config.block_size, C)
        self.h = nn.ModuleList(Block(C, config.n_head) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied head
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def from_tinyllm(model):
    """A TorchGPT holding the same weights as the tinyllm GPT `model`."""
    sd = model.state_dict()
    twin = TorchGPT(model.config)
    ours = {"wte.weight": sd["transformer.wte.weight"], "wpe.weight": sd["transformer.wpe.weight"],
            "ln_f.weight": sd["transformer.ln_f.weight"], "ln_f.bias": sd["transformer.ln_f.bias"]}
    names = {"ln_1": "ln_1", "ln_2": "ln_2", "c_attn": "attn.c_attn", "attn_proj": "attn.c_proj",
             "c_fc": "mlp.c_fc", "mlp_proj": "mlp.c_proj"}
    for i in range(model.config.n_layer):
        for theirs, mine in names.items():
            w = sd[f"transformer.h.{i}.{mine}.weight"]
            ours[f"h.{i}.{theirs}.weight"] = w.T if w.ndim == 2 else w
            ours[f"h.{i}.{theirs}.bias"] = sd[f"transformer.h.{i}.{mine}.bias"]
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.items()})
    return twin
