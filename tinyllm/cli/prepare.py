"""`tinyllm prepare`: raw text in, token files out (tinyllm/data/pipeline.py).

    tinyllm prepare corpus.jsonl data/corpus --tokenizer bpe:4096 --dedup --near-dup 0.8
    tinyllm train --dataset data/corpus
"""
from tinyllm.cli.common import Parser
from tinyllm.data.pipeline import PrepareOptions, prepare
from tinyllm.data.quality import QualityRules


def main(argv):
    parser = Parser(prog="tinyllm prepare",
                    description="Clean, deduplicate, filter and tokenize text into "
                                "train.bin / val.bin for `tinyllm train --dataset`.")
    parser.add_argument("src", help="a text file, a directory of .txt files, or .jsonl (text)")
    parser.add_argument("out", help="the output directory")
    parser.add_argument("--tokenizer", default="char",
                        help="char | bpe:VOCAB (trained on the kept text) | PATH of a saved one")
    parser.add_argument("--dedup", action="store_true", help="drop exact duplicate documents")
    parser.add_argument("--dedup-lines", action="store_true", help="drop lines seen before")
    parser.add_argument("--quality", action="store_true", help="apply the Gopher quality rules")
    parser.add_argument("--near-dup", type=float, nargs="?", const=0.8, default=None,
                        metavar="JACCARD", help="drop near duplicates (MinHash; alone: 0.8)")
    parser.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="the share of documents held out for validation")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    options = PrepareOptions(dedup=args.dedup, dedup_lines=args.dedup_lines,
                             quality=QualityRules() if args.quality else None,
                             near_dup=args.near_dup, num_perm=args.num_perm,
                             val_fraction=args.val_fraction)
    meta = prepare(args.src, args.out, args.tokenizer, options, progress=not args.quiet)
    print(f"wrote {args.out}/: vocabulary {meta['vocab_size']}, dtype {meta['dtype']}; "
          f"report in {args.out}/report.json")
