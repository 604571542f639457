"""Cases that need ranks of their own, run by test_distributed.py under `mpiexec -n 2`:

    python tests/tinyllm/mpi_cases.py memory TEXT OUT   # AdamW moment bytes per rank, as JSON
    python tests/tinyllm/mpi_cases.py fail TEXT OUT     # rank 1 raises at its second step
"""
import json
import sys

from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.corpus import load_data
from tinyllm.distributed import connect
from tinyllm.train import Pretraining, new_run, train
from tinyllm.zero import moment_bytes

MODEL = GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16)


class FailingOnRank1(Pretraining):
    """Pretraining whose loss raises on rank 1 at the second micro-batch it computes."""

    calls = 0

    def loss(self, model, cfg, rng):
        self.calls += 1
        if self.dist.rank == 1 and self.calls == 2:
            raise RuntimeError("a deliberate failure on rank 1")
        return super().loss(model, cfg, rng)


def start(case, text, out):
    dist = connect(zero=1 if case == "memory" else 0)
    cfg = TrainConfig(out_dir=out, data=text, batch_size=2, max_iters=3, eval_interval=100,
                      eval_iters=1, sample_tokens=0)
    tokenizer, train_ids, val_ids = load_data(cfg)
    task = FailingOnRank1(train_ids, val_ids)
    task.dist = dist
    run = new_run(MODEL, cfg, tokenizer)
    return dist, run, task


def main(case, text, out):
    dist, run, task = start(case, text, out)
    with dist.all_or_none():
        before = moment_bytes(run.optimizer)
        dist.prepare(run, task)
        if case == "memory":
            sizes = dist.comm.gather(moment_bytes(run.optimizer), root=0)
            if dist.is_root:
                print(json.dumps({"one_process": before, "per_rank": sizes}))
        else:
            train(run, task, progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
