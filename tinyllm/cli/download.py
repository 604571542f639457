"""`tinyllm download`: OpenAI's GPT-2 from the Hugging Face Hub into the tinyllm cache.

    tinyllm download gpt2                          # prints the folder it fills, e.g.
    tinyllm sample --checkpoint ~/.cache/tinyllm/huggingface/gpt2 --prompt "Hello, I'm"
"""
from tinyllm.cli.common import Parser
from tinyllm.hf_download import MODELS, download_gpt2


def main(argv):
    parser = Parser(prog="tinyllm download",
                    description="Download a GPT-2 (config.json, model.safetensors, vocab.json, "
                                "merges.txt) from the Hugging Face Hub, resuming a cut-off "
                                "download, and print the folder; use it as --checkpoint.")
    parser.add_argument("model", choices=MODELS,
                        help="which GPT-2: 124M, 350M, 774M or 1558M parameters")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help="download into DIR/huggingface/MODEL (default: $TINYLLM_CACHE, "
                             "else $XDG_CACHE_HOME/tinyllm, else ~/.cache/tinyllm)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    print(download_gpt2(args.model, args.cache, progress=not args.no_progress))
