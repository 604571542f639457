"""The same GPT in PyTorch, for benchmarks only: identical architecture and initial weights.

Pre-norm blocks, tanh-GELU MLP, causal scaled_dot_product_attention, learned positions, tied
output head, dropout on the embeddings and on each residual branch (none on the attention
probabilities) — tinyllm's default variant — so a step of each does the same arithmetic.
`from_tinyllm` copies a tinyllm GPT's weights in (our Linear weights are (in, out), PyTorch's
(out, in), hence the transposes), which also lets the benchmark check both give the same loss.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, C, H, bias, dropout):
        super().__init__()
        self.H, self.drop = H, nn.Dropout(dropout)
        self.ln_1, self.ln_2 = nn.LayerNorm(C, bias=bias), nn.LayerNorm(C, bias=bias)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C, bias), nn.Linear(C, C, bias)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C, bias), nn.Linear(4 * C, C, bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.attn_proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class TorchGPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = nn.Embedding(config.block_size, C)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(C, config.n_head, config.bias, config.dropout)
                               for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C, bias=config.bias)

    def forward(self, idx, targets):
        x = self.drop(self.wte(idx) + self.wpe.weight[: idx.shape[1]])
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied head
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def from_tinyllm(model):
    """A TorchGPT holding the same weights as the tinyllm GPT `model`."""
    sd = model.state_dict()
    twin = TorchGPT(model.config)
    names = {"wte": "wte", "wpe": "wpe", "ln_f": "ln_f"}
    blocks = {"ln_1": "ln_1", "ln_2": "ln_2", "c_attn": "attn.c_attn", "attn_proj": "attn.c_proj",
              "c_fc": "mlp.c_fc", "mlp_proj": "mlp.c_proj"}
    for i in range(model.config.n_layer):
        names.update({f"h.{i}.{theirs}": f"h.{i}.{mine}" for theirs, mine in blocks.items()})
    ours = {}
    for theirs, mine in names.items():
        for kind in ("weight", "bias"):
            if f"transformer.{mine}.{kind}" in sd:
                w = sd[f"transformer.{mine}.{kind}"]
                linear = w.ndim == 2 and theirs not in ("wte", "wpe")
                ours[f"{theirs}.{kind}"] = w.T if linear else w  # ours (in, out), theirs (out, in)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.items()})
    return twin


def twin_optimizer(twin, lr, betas, weight_decay):
    """torch.optim.AdamW with tinyllm's groups (tinyllm.optim.param_groups): weight decay on the
    matrices except the position table, none on gains, biases and positions."""
    decay = [p for p in twin.parameters() if p.dim() >= 2 and p is not twin.wpe.weight]
    rest = [p for p in twin.parameters() if all(p is not d for d in decay)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)
