"""Near-duplicate benchmark: MinHash speed, end-to-end dedup time, and precision and recall
against exact Jaccard on a synthetic corpus with planted near duplicates.

The corpus: --docs documents (default 100,000) of 50 to 300 words drawn from a Zipf-like
vocabulary of 20,000 made-up words. A share --dup-fraction of them (default 0.2) are near
copies of a randomly chosen original (an original may get several). A copy replaces k words of
its original with fresh words at positions at least n = 5 apart, so each replacement changes n
shingles and J = (S - k n) / (S + k n) for S shingles; k is set for a target Jaccard drawn
uniformly from [0.5, 1]. Edge positions change fewer shingles, so every planted pair's Jaccard
is then measured exactly (Python sets of shingle strings, minhash.shingles), not assumed.

Truth: a pair is a near duplicate when its exact Jaccard of 5-word shingles is >= --threshold.
Pairs inside a planted group (an original and its copies) are all measured; so is every pair
the method reports. Other pairs are of independent random documents; the largest exact Jaccard
among 5,000 random pairs of originals is printed to show that they are far below threshold.

Rows: signatures per second (signatures() over the whole corpus, one thread); end-to-end dedup
seconds (signatures + LSH candidates + exact verification + union-find, i.e. what prepare runs);
pair precision and recall of the LSH candidates and of the verified pairs, and recall per
Jaccard bin. Times are medians over --repeats runs.

    python benchmarks/dedup.py                    # 100k documents, ~1 minute
    python benchmarks/dedup.py --docs 20000 --repeats 1

Prints the machine and a table, and writes benchmarks/results/dedup.json.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from autograd.kernels import cores, set_threads
from tinyllm.data.lsh import candidate_pairs, choose_bands, near_duplicate_mask, verify
from tinyllm.data.minhash import jaccard, shingle_hashes, shingles, signatures

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import median_seconds  # noqa: E402  (sibling scripts, found via HERE)
from machine import header  # noqa: E402

N = 5  # shingle size in words
N_BINS = 4  # recall is also reported for this many equal Jaccard bins from threshold to 1


def make_corpus(n_docs, dup_fraction, seed):
    """(documents, groups): groups maps an original's index to its copies' indices."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = 1.0 / np.arange(1, 20_001) ** 1.05  # Zipf-like word frequencies
    n_copies = int(n_docs * dup_fraction)
    n_orig = n_docs - n_copies
    lengths = rng.integers(50, 301, n_orig)
    ids = rng.choice(len(vocab), lengths.sum(), p=weights / weights.sum()).tolist()
    ends = np.cumsum(lengths).tolist()
    docs = [[vocab[i] for i in ids[end - n:end]] for n, end in zip(lengths.tolist(), ends)]
    groups = {}
    for c in range(n_copies):
        base = int(rng.integers(n_orig))
        docs.append(_near_copy(docs[base], rng.uniform(0.5, 1.0), rng, f"x{c}_"))
        groups.setdefault(base, []).append(n_orig + c)
    return [" ".join(d) for d in docs], groups


def _near_copy(words, target, rng, fresh):
    """Replace k words, n apart, so that J is about `target` (see the module docstring)."""
    shingle_count = len(words) - N + 1
    k = round(shingle_count * (1 - target) / (N * (1 + target)))
    offset = int(rng.integers(N))
    slots = rng.choice((len(words) - offset + N - 1) // N, size=k, replace=False)
    copy = list(words)
    for j, slot in enumerate(slots):
        copy[slot * N + offset] = f"{fresh}{j}"
    return copy


def exact_pairs(docs, groups, threshold):
    """{(i, j): J} for every pair inside a planted group, by exact shingle sets."""
    sims = {}
    for base, copies in groups.items():
        members = [base] + copies
        sets = {i: shingles(docs[i], N) for i in members}
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = sorted((members[a], members[b]))
                sims[(i, j)] = jaccard(sets[i], sets[j])
    return sims


def background_max(docs, groups, rng, n_pairs=5_000):
    """Largest exact Jaccard over random pairs of documents that are not in any group."""
    grouped = set(groups) | {c for cs in groups.values() for c in cs}
    free = np.array([i for i in range(len(docs)) if i not in grouped])
    pairs = rng.choice(free, size=(n_pairs, 2))
    cache = {}

    def shingle_set(i):
        return cache.setdefault(i, shingles(docs[i], N))

    return max(jaccard(shingle_set(i), shingle_set(j)) for i, j in pairs if i != j)


def run_dedup(docs, threshold, num_perm):
    sigs = signatures(docs, num_perm, N)
    return near_duplicate_mask(sigs, lambda i: shingle_hashes(docs[i], N), threshold)


def score(found, planted, docs, threshold):
    """Precision and recall of the set of pairs `found` against the truth (module docstring)."""
    exact = dict(planted)
    for pair in found - exact.keys():  # reported pairs outside the groups: measure them too
        exact[pair] = jaccard(shingles(docs[pair[0]], N), shingles(docs[pair[1]], N))
    truth = {p for p, s in exact.items() if s >= threshold}
    hits = found & truth
    width = (1.0 - threshold) / N_BINS
    bins = [[0, 0] for _ in range(N_BINS)]  # [found, total] per Jaccard bin
    for p in truth:
        k = min(int((exact[p] - threshold) / width), N_BINS - 1)
        bins[k][0] += p in found
        bins[k][1] += 1
    by_bin = {f"{threshold + k * width:.2f}-{threshold + (k + 1) * width:.2f}":
              (hit / total if total else None, total) for k, (hit, total) in enumerate(bins)}
    return {"pairs_reported": len(found), "true_pairs": len(truth),
            "precision": len(hits) / len(found) if found else 1.0,
            "recall": len(hits) / len(truth) if truth else 1.0, "recall_by_jaccard": by_bin}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dup-fraction", type=float, default=0.2)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(cores())  # the libraries' default, set so that the GEMM peak can name it
    line, machine = header(cores())
    print(line)
    results = measure(args, machine)
    print_table(results)
    out = HERE / "results" / "dedup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def measure(args, machine):
    """Build the corpus, time the dedup, score it: the dict written to dedup.json."""
    start = time.perf_counter()
    docs, groups = make_corpus(args.docs, args.dup_fraction, args.seed)
    planted = exact_pairs(docs, groups, args.threshold)
    noise = background_max(docs, groups, np.random.default_rng(args.seed + 1))
    print(f"corpus built and measured in {time.perf_counter() - start:.1f} s")

    signatures(docs[:10], args.num_perm, N)  # compile (or load the cache) outside the timing
    sig_s, sigs = median_seconds(lambda: signatures(docs, args.num_perm, N), args.repeats)
    dedup_s, (mask, stats) = median_seconds(
        lambda: run_dedup(docs, args.threshold, args.num_perm), args.repeats)
    bands, rows = choose_bands(args.threshold, args.num_perm)
    candidates = candidate_pairs(sigs, bands, rows)
    verified, _ = verify(candidates, lambda i: shingle_hashes(docs[i], N), args.threshold)
    candidates, verified = ({tuple(p) for p in x.tolist()} for x in (candidates, verified))

    return {
        "command": "python benchmarks/dedup.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": machine,
        "corpus": {"docs": len(docs), "words": sum(d.count(" ") + 1 for d in docs),
                   "planted_pairs": len(planted),
                   "planted_pairs_at_or_above_threshold":
                       sum(s >= args.threshold for s in planted.values()),
                   "max_background_jaccard": noise},
        "bands": bands, "rows": rows,
        "signatures_per_second": len(docs) / sig_s, "signature_seconds": sig_s,
        "dedup_seconds": dedup_s, "docs_removed": int((~mask).sum()), "lsh_stats": stats,
        "candidates": score(candidates, planted, docs, args.threshold),
        "verified": score(verified, planted, docs, args.threshold),
    }


def print_table(r):
    c = r["corpus"]
    print(f"\n{c['docs']:,} docs, {c['words']:,} words, {c['planted_pairs']:,} planted pairs "
          f"({c['planted_pairs_at_or_above_threshold']:,} with J >= threshold); "
          f"largest background J {c['max_background_jaccard']:.3f}")
    print(f"LSH: {r['bands']} bands x {r['rows']} rows\n")
    print(f"{'metric':<34}{'value':>14}")
    print(f"{'signatures / s':<34}{r['signatures_per_second']:>14,.0f}")
    print(f"{'signature time (s)':<34}{r['signature_seconds']:>14.2f}")
    print(f"{'end-to-end dedup time (s)':<34}{r['dedup_seconds']:>14.2f}")
    print(f"{'documents removed':<34}{r['docs_removed']:>14,}")
    for stage in ("candidates", "verified"):
        s = r[stage]
        print(f"{stage + ': pairs':<34}{s['pairs_reported']:>14,}")
        print(f"{stage + ': precision':<34}{s['precision']:>14.4f}")
        print(f"{stage + ': recall':<34}{s['recall']:>14.4f}")
    for name, (recall, count) in r["verified"]["recall_by_jaccard"].items():
        value = "n/a" if recall is None else f"{recall:.4f}"
        print(f"{'  recall, J in ' + name:<34}{value:>14}  ({count:,} pairs)")


if __name__ == "__main__":
    main()
