"""Preference tuning with Direct Preference Optimization (Rafailov et al., 2023).

Given a prompt x and two answers, a preferred y_c ("chosen") and a dispreferred y_r
("rejected"), DPO raises the probability of y_c relative to y_r, measured against a frozen
reference model (the model DPO starts from, usually the SFT one). The paper shows that the
reward a preference model would learn is implicit in the policy pi itself:

    r(x, y) = beta * (log pi(y | x) - log ref(y | x))

and that fitting the Bradley-Terry model P(y_c preferred to y_r) = sigmoid(r_c - r_r) to the
pairs by maximum likelihood is the loss

    loss = -log sigmoid(r_c - r_r)
         = -log sigmoid(beta * ((log pi(y_c|x) - log ref(y_c|x))
                                - (log pi(y_r|x) - log ref(y_r|x))))

averaged over pairs. beta is the weight of the KL penalty the derivation starts from: the loss
flattens once beta times the log-ratio margin is a few units, so the smaller beta, the further pi
drifts from ref before a pair counts as learnt. The log-probability of an answer is the sum of
log softmax(logits)[target] over its tokens (end marker included), as in the authors' code;
`average=True` takes the mean over its tokens instead, so long answers do not dominate. Prompt
tokens are excluded by the same IGNORE_INDEX masks as SFT (sft.make_batch).

How it is computed. -log sigmoid(a - b) = -log (e^a / (e^a + e^b)) is the cross-entropy of the
two "logits" [a, b] with target 0. So the rewards of each pair form a (B, 2) matrix of logits,
column 0 the chosen answer, and the loss is F.cross_entropy(rewards, zeros): the fused,
overflow-free logsumexp kernel, exact at r_c = r_r, which is where training starts (pi = ref,
every reward 0, loss ln 2). A stable composition from max/abs would have kinks exactly there.

The sequence log-probabilities come from the same kernel with reduction="none": the per-token
losses -log p(target), 0 at ignored positions, summed over time.

Metrics (means over pairs): loss, chosen_reward and rejected_reward (r_c, r_r), margin
(r_c - r_r) and reward_accuracy (the share of pairs with r_c > r_r; 0 at the start, where the
rewards are equal).

Shapes: B pairs, R = 2B sequences (the chosen ones, then the rejected), T time, V vocabulary.
Left out: IPO, KTO and other variants; label smoothing (conservative DPO); caching the
reference log-probabilities (they are recomputed for each batch, a third of a step's work).
"""
import numpy as np

from autograd import functional as F
from autograd import no_grad
from tinyllm.finetune.sft import IGNORE_INDEX, check_room, encode_pair, make_batch
from tinyllm.finetune.template import end_ids

METRICS = ("loss", "chosen_reward", "rejected_reward", "margin", "reward_accuracy")


def response_logprobs(logits, y, average=False):
    """log p(response) per sequence: the sum (or mean) over counted targets of log softmax.

    logits Tensor (R, T, V), y (R, T) with IGNORE_INDEX where not counted -> Tensor (R,).
    >>> from autograd import Tensor
    >>> response_logprobs(Tensor(np.zeros((1, 2, 4))), np.array([[-100, 3]]))  # log 1/4
    Tensor(array([-1.38629436]))
    """
    nll = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="none")  # (R, T)
    logp = -nll.sum(axis=1)  # (R,)
    if average:
        counts = np.count_nonzero(y != IGNORE_INDEX, axis=1)  # (R,)
        logp = logp * (1.0 / np.maximum(counts, 1)).astype(logits.dtype)  # (R,)
    return logp


def dpo_loss(policy_logps, reference_logps, beta):
    """(DPO loss Tensor, metrics dict) from log-probabilities of the pairs' answers.

    policy_logps Tensor (B, 2) and reference_logps array (B, 2): column 0 the chosen answer,
    column 1 the rejected one.
    >>> from autograd import Tensor
    >>> loss, m = dpo_loss(Tensor(np.array([[-1.0, -2.0]])), np.array([[-2.0, -1.0]]), 0.5)
    >>> round(loss.item(), 4), m["margin"], m["reward_accuracy"]  # -log sigmoid(1)
    (0.3133, 1.0, 1.0)
    """
    reference_logps = np.asarray(reference_logps, dtype=policy_logps.dtype)  # (B, 2)
    rewards = (policy_logps - reference_logps) * beta  # (B, 2) implicit rewards
    # -log sigmoid(r_c - r_r) = -log softmax([r_c, r_r])[0]: cross-entropy with target 0
    loss = F.cross_entropy(rewards, np.zeros(rewards.shape[0], dtype=np.int64))
    return loss, reward_metrics(rewards.data, loss.item())


def reward_metrics(rewards, loss):
    """The METRICS as floats, from rewards (B, 2) and the loss."""
    margin = rewards[:, 0] - rewards[:, 1]  # (B,)
    return {"loss": float(loss), "chosen_reward": float(rewards[:, 0].mean()),
            "rejected_reward": float(rewards[:, 1].mean()), "margin": float(margin.mean()),
            "reward_accuracy": float((margin > 0).mean())}


class DPOTask:
    """Preference tuning for the training loop. The loop (tinyllm/train.py) calls
    `loss(model, cfg, rng)` each micro-step and `evaluate(model, cfg)` at each evaluation.

    reference: the frozen model the policy starts from (a separate copy: it is never trained).
    splits: data.Splits of Preferences.
    """

    def __init__(self, reference, tokenizer, splits, block_size, batch_size, beta=0.1,
                 average=False):
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.reference, self.beta, self.average = reference.eval(), beta, average
        self.block_size, self.batch_size = block_size, batch_size
        self.pad_id = end_ids(tokenizer)[0]
        self.splits = {name: [self._encode(tokenizer, i, p) for i, p in
                              enumerate(getattr(splits, name))]
                       for name in ("train", "val", "test")}
        check_room([(p, c) for p, c, _ in self.splits["val"]], block_size)

    def describe(self):
        n = {name: len(pairs) for name, pairs in self.splits.items()}
        return f"{n['train']:,} train / {n['val']:,} val preference pairs, beta {self.beta}"

    @staticmethod
    def _encode(tokenizer, i, pref):
        """(prompt ids, chosen ids + end, rejected ids + end) of preference number i."""
        prompt, chosen = encode_pair(tokenizer, i, pref, pref.chosen)
        return prompt, chosen, encode_pair(tokenizer, i, pref, pref.rejected)[1]

    def make_batch(self, triples):
        """(x, y) (2B, T): the B chosen sequences, then the B rejected ones."""
        pairs = [(p, c) for p, c, _ in triples] + [(p, r) for p, _, r in triples]
        return make_batch(pairs, self.block_size, self.pad_id)

    def pair_logps(self, model, x, y):
        """Tensor (B, 2): log p(chosen), log p(rejected) of each pair under `model`."""
        logits, _ = model(x)  # (2B, T, V)
        logp = response_logprobs(logits, y, self.average)  # (2B,)
        return logp.reshape(2, len(x) // 2).T  # (B, 2)

    def loss_on(self, model, x, y):
        """(loss Tensor, metrics) for one batch; the reference runs without a graph."""
        with no_grad():
            reference_logps = self.pair_logps(self.reference, x, y).data  # (B, 2)
        return dpo_loss(self.pair_logps(model, x, y), reference_logps, self.beta)

    def loss(self, model, cfg, rng):
        """(loss Tensor, tokens) for batch_size training pairs drawn uniformly with
        replacement; the model runs in whatever mode the loop set (train, for dropout)."""
        x, y = self.make_batch(self._picks(rng))
        return self.loss_on(model, x, y)[0], x.size

    def skip(self, model, cfg, rng):
        """Draw the pairs `loss` would, and drop them: another rank computes them."""
        self._picks(rng)

    def _picks(self, rng):
        train = self.splits["train"]
        return [train[i] for i in rng.integers(0, len(train), size=self.batch_size)]  # B

    def evaluate(self, model, cfg=None):
        """The METRICS over every validation pair ("val_loss", "val_reward_accuracy", ...) and
        over as many training pairs (the first ones: the same each time), for the log."""
        n = len(self.splits["val"])
        return {**self._means(model, self.splits["train"][:n], "train"),
                **self.evaluate_split(model, "val")}

    def evaluate_split(self, model, split="val"):
        """{"<split>_<metric>": mean over every pair of the split} for each of METRICS, in eval
        mode, without a graph, batches in order."""
        return self._means(model, self.splits[split], split)

    def _means(self, model, pairs, prefix):
        model.eval()
        sums = dict.fromkeys(METRICS, 0.0)
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            with no_grad():
                _, metrics = self.loss_on(model, *self.make_batch(chunk))
            for name in METRICS:
                sums[name] += metrics[name] * len(chunk)  # metrics are means over the chunk
        return {f"{prefix}_{name}": total / len(pairs) for name, total in sums.items()}
