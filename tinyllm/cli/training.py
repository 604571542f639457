"""What the training commands (`train`, `sft`, `dpo`) share: the flags that say where a run
starts, and running the loop with the run folder claimed, on one process or N MPI ranks.
"""
import sys

from tinyllm.cli.common import compile_kernels
from tinyllm.distributed import connect
from tinyllm.load import find_checkpoint
from tinyllm.run_dir import claim
from tinyllm.train import train


def add_start_flags(parser, init_help):
    """--resume, --init, --overwrite, --no-progress and --zero."""
    start = parser.add_argument_group("where the run starts")
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir from its ckpt.npz, exactly")
    start.add_argument("--init", metavar="CHECKPOINT", help=init_help)
    start.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --out-dir (otherwise refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--zero", type=int, default=0, choices=(0, 1),
                        help="under mpiexec: 1 splits AdamW's moments between the ranks "
                             "(ZeRO-1, 1/N of the optimizer's memory each), 0 copies them")


def execute(args, out_dir, start):
    """Claim `out_dir`, build (run, task) with start(), print what will happen, train.

    Under `mpiexec -n N` every rank runs this and an error on one ends them all; rank 0 alone
    holds the folder. A run that a signal stopped exits with 128 + the signal's number, as a
    shell reports it; otherwise the trained run is returned."""
    if args.resume and args.init:
        raise ValueError("--resume continues a run; --init starts a new one: choose one")
    dist = connect(args.zero)  # one process, unless `mpiexec -n N` started N of us
    with dist.all_or_none():
        lock = claim(out_dir, args.resume, args.overwrite) if dist.is_root else None
        run, task = start()
        dist.prepare(run, task)
        _summary(run, task)
        compile_kernels(run.model.config)
        train(run, task, progress=not args.no_progress and dist.is_root)
    if lock is not None:
        lock.close()
    if run.stopped:
        sys.exit(128 + run.stopped)
    return run


def resume_path(out_dir):
    """The checkpoint --resume continues: the run folder's ckpt.npz (its latest state)."""
    path = find_checkpoint(out_dir)
    return path.parent / "ckpt.npz" if (path.parent / "ckpt.npz").is_file() else path


def _summary(run, task):
    m, cfg = run.model, run.train_cfg
    trainable = sum(p.size for p in run.optimizer.params())
    print(f"model: {m.num_params() / 1e6:.2f}M parameters ({trainable:,} trained), {m.config}")
    print(f"data: {task.describe()}, vocabulary {run.tokenizer.vocab_size}; from step "
          f"{run.step} to {cfg.max_iters}, writing to {cfg.out_dir}/")
    if run.dist.size > 1:
        print(f"data parallel: {run.dist.size} ranks x {cfg.grad_accum} micro-batches of "
              f"{cfg.batch_size} sequences = {run.dist.size * cfg.grad_accum * cfg.batch_size} "
              f"a step ({type(run.dist).__name__})")
