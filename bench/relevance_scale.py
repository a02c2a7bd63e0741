"""The ranking step of a daily cycle at scale: every profile scored against every new paper.

    python bench/relevance_scale.py                         # 100,000 subscribers x 3,000 papers
    python bench/relevance_scale.py --subscribers 20000 --json

A fraction --profiles (default 0.3) of the subscribers has a profile of 5 to 50 positive seeds
(drawn from a pool of --pool distinct stored papers) and 0 to 5 "less like this" papers; the
day has --papers new papers (bench/match.py's corpus and perturbed copies). It runs what the
daily build would: one TfidfSpace fitted on the day's papers and the seed pool's texts,
each seed and paper vectorized once, profile.profile_weights for all profiles, then
profile.iter_scores in chunks, keeping each profile's --keep best papers. Reports the time
and the peak memory above the process's baseline of each phase.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from cycle import peak_rss_mb, reset_peak_rss, rss_mb  # noqa: E402
from match import load_corpus, make_papers  # noqa: E402

from digestd.relevance import profile as P  # noqa: E402
from digestd.relevance.text import TfidfSpace, paper_text  # noqa: E402

DEFAULT_CORPUS = ROOT / "tests" / "data" / "hf_listings.json"
RESULTS = ROOT / "bench" / "results"


def run(subscribers: int, papers: int, fraction: float, pool: int, keep: int, seed: int,
        fit_seeds: bool) -> dict:
    rng = random.Random(seed)
    records = load_corpus(DEFAULT_CORPUS)
    day = make_papers(records, papers, rng, ["Smith"])
    stored = make_papers(records, pool, random.Random(seed + 1), ["Jones"])
    n_prof = int(subscribers * fraction)
    positives = [rng.sample(range(pool), rng.randint(5, 50)) for _ in range(n_prof)]
    negatives = [rng.sample(range(pool), rng.randint(0, 5)) for _ in range(n_prof)]
    used = sorted({i for g in (*positives, *negatives) for i in g})
    row_of = {i: k for k, i in enumerate(used)}
    positives = [[row_of[i] for i in g] for g in positives]
    negatives = [[row_of[i] for i in g] for g in negatives]
    base = rss_mb()
    phases = {}

    def phase(name, t0):
        phases[name] = {"s": round(time.perf_counter() - t0, 2),
                        "peak_extra_mb": round(peak_rss_mb() - base, 1)}
        reset_peak_rss()

    reset_peak_rss()
    t0 = time.perf_counter()
    paper_texts = [paper_text(p.title, p.abstract) for p in day]
    seed_texts = [paper_text(stored[i].title, stored[i].abstract) for i in used]
    if fit_seeds:
        space, vectors = TfidfSpace.fit_vectors(paper_texts + seed_texts)
        docs, seeds = vectors[:len(paper_texts)], vectors[len(paper_texts):]
    else:
        space, docs = TfidfSpace.fit_vectors(paper_texts)
        seeds = space.vectors(seed_texts)
    phase("vectorize", t0)
    t0 = time.perf_counter()
    weights = P.profile_weights(positives, negatives, len(used))
    phase("profiles", t0)
    t0 = time.perf_counter()
    best = np.empty((n_prof, keep), np.int32)
    for start, block in P.iter_scores(weights, seeds, docs):
        top = np.argpartition(-block, keep, axis=1)[:, :keep]
        best[start:start + len(block)] = top
    phase("score", t0)
    total = sum(p["s"] for p in phases.values())
    return {"subscribers": subscribers, "profiles": n_prof, "papers": papers,
            "distinct_seeds": len(used), "terms": len(space.terms),
            "seed_nnz": int(seeds.nnz), "phases": phases, "total_s": round(total, 2),
            "peak_extra_mb": max(p["peak_extra_mb"] for p in phases.values()),
            "fit_on_seeds": fit_seeds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=3000)
    parser.add_argument("--profiles", type=float, default=0.3)
    parser.add_argument("--pool", type=int, default=50_000,
                        help="distinct stored papers the seeds are drawn from")
    parser.add_argument("--keep", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--fit-papers-only", action="store_true",
                        help="fit the TF-IDF space on the day's papers alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    res = run(args.subscribers, args.papers, args.profiles, args.pool, args.keep, args.seed,
              not args.fit_papers_only)
    text = (f"{res['profiles']:,} profiles ({res['distinct_seeds']:,} distinct seeds) x "
            f"{res['papers']:,} papers, {res['terms']:,} terms: "
            + ", ".join(f"{k} {v['s']} s" for k, v in res["phases"].items())
            + f"; total {res['total_s']} s, peak extra memory {res['peak_extra_mb']} MB")
    RESULTS.mkdir(exist_ok=True)
    stem = f"relevance-scale-{args.subscribers}-{args.papers}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / f"{stem}.txt").write_text(text + "\n")
    print(json.dumps(res, indent=1) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
