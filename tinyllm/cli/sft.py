"""`tinyllm sft`: instruction tuning, the loss on the responses only (tinyllm/finetune/sft.py).

    tinyllm sft --init out-bpe --out-dir out-sft                      # all weights
    tinyllm sft --init out-bpe --out-dir out-lora --lora-rank 8       # LoRA adapters only
    tinyllm sft --init gpt2 --out-dir out-gpt2-sft --batch-size 4     # a Hugging Face GPT-2
    tinyllm chat --checkpoint out-sft
"""
from tinyllm.cli.finetune import parser_for, run_finetune
from tinyllm.finetune.data import load_instructions, split
from tinyllm.finetune.sft import SFTTask


def main(argv):
    parser, train_cfg = parser_for(
        "sft", "Instruction-tune a model on Alpaca-style records (instruction, input, "
        "output): the loss counts the response tokens only.",
        "instruction records, JSON or JSONL (default: the 1,100 of LLMs-from-scratch ch. 7, "
        "downloaded and verified, or $TINYLLM_INSTRUCTION_DATA)")
    parser.add_argument("--train-on-prompt", action="store_true",
                        help="count the prompt's tokens in the loss too")
    args = parser.parse_args(argv)
    run_finetune(args, train_cfg, "sft", {"train_on_prompt": args.train_on_prompt}, _task)


def _task(run):
    meta = run.task_meta
    splits = split(load_instructions(meta["data"] or None))
    return SFTTask(run.tokenizer, splits, run.model.config.block_size,
                   run.train_cfg.batch_size, meta["train_on_prompt"])
