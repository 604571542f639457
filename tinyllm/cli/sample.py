"""`tinyllm sample`: generate text from a checkpoint.

    tinyllm sample --checkpoint out --prompt "ROMEO:" --max-new-tokens 500
    tinyllm sample --checkpoint out --draft out-small --temperature 0   # speculative decoding
    tinyllm sample --checkpoint gpt2 --quantize int8      # int8 weights: fewer bytes per token
"""
import numpy as np

from tinyllm.checkpoint import tokenizer_bytes
from tinyllm.cli.common import Parser, add_checkpoint_flags, print_stream
from tinyllm.generate import generate
from tinyllm.load import load_model
from tinyllm.quantize import quantize_model
from tinyllm.speculative import speculative_generate


def add_sampling_flags(parser):
    """The decoding flags `sample` and `chat` share."""
    parser.add_argument("--max-new-tokens", type=int, default=500, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="divides the logits; 0 for greedy decoding")
    parser.add_argument("--top-k", type=int, default=200, help="sample among the k most likely")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample among the most likely tokens holding this much probability")
    parser.add_argument("--seed", type=int, default=1337, help="seeds the sampling")


def main(argv):
    parser = Parser(prog="tinyllm sample", description="Generate text from a trained model.")
    add_checkpoint_flags(parser)
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    add_sampling_flags(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="rerun the whole context every step (slow; for comparison)")
    parser.add_argument("--draft", metavar="CHECKPOINT", default=None,
                        help="a small model of the same tokenizer: speculative decoding")
    parser.add_argument("--num-samples", type=int, default=1, help="samples, one after another")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="round the weight matrices (and the draft's) to int8, one scale "
                             "per output channel: a quarter of the bytes to read per token")
    parser.add_argument("--no-fast-decode", action="store_true",
                        help="decode each token through the autograd graph instead of the "
                             "compiled step (slower; for comparison)")
    args = parser.parse_args(argv)
    if args.draft and args.no_cache:
        parser.error("--draft decodes with KV caches; it cannot be combined with --no-cache")
    if args.max_new_tokens < 0 or args.num_samples < 1:
        parser.error("--max-new-tokens must be >= 0 and --num-samples >= 1")
    model, tokenizer, _ = load_model(args.checkpoint, args.base)
    draft = _load_draft(args.draft, tokenizer)
    if args.quantize:  # "int8", the only choice
        quantize_model(model)
        if draft is not None:
            quantize_model(draft)
    rng = np.random.default_rng(args.seed)
    idx = np.array([tokenizer.encode(args.prompt)])  # (1, T)
    for i in range(args.num_samples):
        if i:
            print("---------------")
        print_stream(tokenizer, args.prompt, _new_tokens(args, model, draft, idx, rng))


def _new_tokens(args, model, draft, idx, rng):
    """The generator the flags ask for: cached (or, --no-cache, plain) sampling, or speculative
    decoding with --draft; both yield the same (1,) arrays."""
    if draft is None:
        return generate(model, idx, args.max_new_tokens, args.temperature, args.top_k,
                        args.top_p, rng, use_cache=not args.no_cache,
                        fast=not args.no_fast_decode)
    return speculative_generate(model, draft, idx, args.max_new_tokens,
                                temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, rng=rng, fast=not args.no_fast_decode)


def _load_draft(path, tokenizer):
    """The draft model for --draft, or None; it must share the target's tokenizer."""
    if path is None:
        return None
    draft, draft_tokenizer, _ = load_model(path)
    if tokenizer_bytes(draft_tokenizer) != tokenizer_bytes(tokenizer):
        raise ValueError("the draft's tokenizer differs from the target's")
    return draft
