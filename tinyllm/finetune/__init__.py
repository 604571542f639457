"""Fine-tuning a pretrained GPT: instruction tuning (SFT), preference tuning (DPO), chatting.

Read template.py first (the one prompt format everything shares), then data.py (reading and
splitting the records), sft.py (the response-only loss), dpo.py (the preference loss) and
chat.py (answering with the fine-tuned model).

SFTTask and DPOTask are what the training loop (tinyllm/train.py) drives. Both offer
    task.loss(model, rng) -> (0-d loss Tensor to backpropagate, dict of float metrics)
    task.evaluate(model, split="val") -> {"<split>_<metric>": float}  (eval mode, no graph)
where rng is the loop's batch generator (its state is checkpointed, so resuming is exact).
"""
from .dpo import DPOTask
from .sft import SFTTask

__all__ = ["DPOTask", "SFTTask"]
