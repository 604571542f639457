"""Fine-tuning a pretrained GPT: instruction tuning (SFT), preference tuning (DPO), chatting.

Read template.py first (the one prompt format everything shares), then data.py (reading and
splitting the records), sft.py (the response-only loss), dpo.py (the preference loss) and
chat.py (answering with the fine-tuned model).

SFTTask and DPOTask are tasks of the training loop (tinyllm/train.py), as its Pretraining is:
    task.loss(model, cfg, rng) -> (0-d loss Tensor to backpropagate, tokens in the batch)
    task.skip(model, cfg, rng)     draws the same batch and drops it (for data parallel)
    task.evaluate(model, cfg) -> {"train_loss", "val_loss", ...}  (eval mode, no graph)
    task.evaluate_split(model, split) -> {"<split>_<metric>": float}
where rng is the loop's batch generator (its state is checkpointed, so resuming is exact).
"""
from .dpo import DPOTask
from .sft import SFTTask

__all__ = ["DPOTask", "SFTTask"]
