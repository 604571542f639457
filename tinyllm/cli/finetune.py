"""What `tinyllm sft` and `tinyllm dpo` share: a model to start from (--init, anything
--checkpoint takes), full fine-tuning or LoRA adapters (--lora-rank), exact --resume, and the
training loop of pretraining (tinyllm/train.py) driving the command's task.

A run records how it started (the task's kind, the --init path, the data and the task's own
settings) in its checkpoints, so --resume rebuilds the very same task. With LoRA the run also
writes adapter.npz: the adapters alone and the path of their base (finetune/lora.py).
"""
from pathlib import Path

from tinyllm.checkpoint import save_adapter
from tinyllm.cli.common import Parser
from tinyllm.cli.training import add_start_flags, execute, resume_path
from tinyllm.config import FINETUNE_PRESETS, TrainConfig, add_config_flags, apply_overrides
from tinyllm.finetune.lora import GPT_LINEARS, LoRASpec, adapter_path
from tinyllm.load import load_model, source_name
from tinyllm.train import new_run, restore


# TrainConfig fields of pretraining alone: token files, the val split of a text, the number of
# evaluation batches, the closing sample
UNUSED_FIELDS = ("dataset", "val_fraction", "eval_iters", "sample_tokens")


def parser_for(kind, description, data_help):
    """The command's parser; returns (parser, its TrainConfig defaults)."""
    train_cfg = TrainConfig(**FINETUNE_PRESETS[kind])
    parser = Parser(prog=f"tinyllm {kind}", description=description, conflict_handler="resolve")
    add_start_flags(parser, "the model to fine-tune: a run folder, checkpoint file or Hugging "
                            "Face GPT-2 folder (required unless --resume)")
    lora = parser.add_argument_group("LoRA (Hu et al., 2021): train low-rank adapters only")
    lora.add_argument("--lora-rank", type=int, default=0,
                      help="the adapters' rank r; 0 trains every weight (full fine-tuning)")
    lora.add_argument("--lora-alpha", type=float, default=16.0,
                      help="the update is scaled by alpha / r")
    lora.add_argument("--lora-targets", default="c_attn,c_proj",
                      help=f"comma-separated Linear names to adapt, among {GPT_LINEARS}")
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout while fine-tuning (default: the --init model's)")
    # SFT and DPO evaluate the whole held-out split of their records and print no samples
    add_config_flags(parser, train_cfg, skip=UNUSED_FIELDS)
    parser.add_argument("--data", default="", help=data_help)  # replaces TrainConfig's help
    return parser, train_cfg


def run_finetune(args, train_cfg, kind, settings, make_task):
    """Start (or --resume) a fine-tuning run and train it; returns the run.

    settings: the task's own flags, recorded in the checkpoints; make_task(run) builds the
    task from run.task_meta (the same on a fresh start and on --resume)."""
    train_cfg = apply_overrides(train_cfg, args)

    def start():
        run = _resumed(args, train_cfg) if args.resume else _fresh(args, train_cfg, kind,
                                                                  settings)
        return run, make_task(run)

    run = execute(args, train_cfg.out_dir, start)
    if run.lora is not None and run.dist.is_root:
        save_adapter(adapter_path(train_cfg.out_dir), run.model, run.lora,
                     run.task_meta["init"], run.tokenizer)
        print(f"adapters alone: {adapter_path(train_cfg.out_dir)}")
    return run


def _fresh(args, train_cfg, kind, settings):
    if not args.init:
        raise ValueError(f"tinyllm {kind} needs --init CHECKPOINT (the model to fine-tune)")
    model, tokenizer, _ = load_model(args.init)
    config = apply_overrides(model.config, args)  # only dropout can be given
    lora = None
    if args.lora_rank:
        lora = LoRASpec(args.lora_rank, args.lora_alpha, tuple(args.lora_targets.split(",")))
    run = new_run(config, train_cfg, tokenizer, model.state_dict(), lora)
    data = str(Path(args.data).resolve()) if args.data else ""
    run.task_meta = {"kind": kind, "init": source_name(args.init), "data": data,
                     **settings}
    return run


def _resumed(args, train_cfg):
    run = restore(resume_path(train_cfg.out_dir), train_cfg.out_dir)
    run.train_cfg = apply_overrides(run.train_cfg, args)
    if not run.task_meta:
        raise ValueError(f"{train_cfg.out_dir} holds a pretraining run: resume it with "
                         "`tinyllm train --resume`")
    return run
