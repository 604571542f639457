"""`tinyllm dpo`: preference tuning with Direct Preference Optimization
(tinyllm/finetune/dpo.py), against the frozen --init model as the reference.

    tinyllm dpo --init out-sft --out-dir out-dpo --beta 0.1
    tinyllm dpo --init out-sft --out-dir out-dpo-lora --lora-rank 8
"""
from tinyllm.checkpoint import tokenizer_bytes
from tinyllm.cli.finetune import parser_for, run_finetune
from tinyllm.finetune.data import load_preferences, split
from tinyllm.finetune.dpo import DPOTask
from tinyllm.load import load_model


def main(argv):
    parser, train_cfg = parser_for(
        "dpo", "Preference-tune a model (usually an SFT one) on records with a chosen and a "
        "rejected response; the --init model is the frozen reference.",
        "preference records, JSON or JSONL (default: the 1,100 of LLMs-from-scratch ch. 7, "
        "downloaded and verified, or $TINYLLM_PREFERENCE_DATA)")
    parser.add_argument("--beta", type=float, default=0.1,
                        help="the strength of the pull towards the reference model")
    parser.add_argument("--average-logps", action="store_true",
                        help="score a response by its mean token log-probability, not the sum")
    args = parser.parse_args(argv)
    run_finetune(args, train_cfg, "dpo", {"beta": args.beta, "average": args.average_logps},
                 _task)


def _task(run):
    meta = run.task_meta
    reference, tokenizer, _ = load_model(meta["init"])  # the start, frozen (never trained)
    if tokenizer_bytes(tokenizer) != tokenizer_bytes(run.tokenizer):
        raise ValueError(f"the reference {meta['init']} has another tokenizer than the run")
    splits = split(load_preferences(meta["data"] or None))
    return DPOTask(reference, run.tokenizer, splits, run.model.config.block_size,
                   run.train_cfg.batch_size, meta["beta"], meta["average"])
