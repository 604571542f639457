"""`tinyllm export`: a model as a Hugging Face GPT-2 folder, which transformers opens as is.

    tinyllm export --checkpoint out --hf out/hf       # or: tinyllm export out --hf out/hf
    # then, in Python: GPT2LMHeadModel.from_pretrained("out/hf"),
    #                  GPT2TokenizerFast.from_pretrained("out/hf")
"""
from tinyllm.cli.common import Parser
from tinyllm.hf import save_gpt2
from tinyllm.load import load_model


def main(argv):
    parser = Parser(prog="tinyllm export",
                    description="Write a model and its tokenizer as a Hugging Face GPT-2 folder "
                                "(config.json, model.safetensors, vocab.json, merges.txt, "
                                "tokenizer_config.json). It needs GPT-2's architecture (learned "
                                "positions, LayerNorm, GELU) and a byte-level BPE tokenizer "
                                "with GPT-2's split pattern.")
    parser.add_argument("positional", nargs="?", metavar="CHECKPOINT",
                        help="the same as --checkpoint")
    parser.add_argument("--checkpoint", default=None,
                        help="a run folder, a checkpoint file or a Hugging Face GPT-2 folder "
                             "(default: out)")
    parser.add_argument("--hf", required=True, metavar="DIR",
                        help="the folder to write; created if needed, its files overwritten")
    args = parser.parse_args(argv)
    if args.positional and args.checkpoint and args.positional != args.checkpoint:
        parser.error("give the checkpoint once: as CHECKPOINT or as --checkpoint")
    model, tokenizer, _ = load_model(args.checkpoint or args.positional or "out")
    save_gpt2(model, tokenizer, args.hf)
    print(f"wrote {args.hf} ({model.num_params():,} parameters, "
          f"{tokenizer.vocab_size:,} tokens)")
