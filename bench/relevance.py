"""Ranking quality on a real day of arXiv: seeds of one primary category, the rest ranked.

    python bench/relevance.py                       # the table; saved in bench/results/
    python bench/relevance.py --json
    python bench/relevance.py --draws 5 --no-semantic

For every primary category with at least --min-papers papers, --draws seeded draws of --seeds
seed papers from it; every other paper of the day is ranked and scored on "same primary
category" (a proxy for what the reader wants: use it to compare methods, not to claim
quality): precision@10, precision@25, nDCG@25, and the lift of precision@25 over the random
order's expected precision (the category's share of the candidates), averaged over all draws.

Methods, in one run on the same draws:
  random     a seeded random order
  today      the digest's order without rules (render.by_relevance: upvotes, date, id)
  baseline   plain TF-IDF centroid: the mean of the seeds' sublinear TF-IDF vectors
             (title + abstract, English stop words), cosine; written out here, not ours
  default    digestd.relevance.rank.rank(method="tfidf")
  semantic   digestd.relevance.rank.rank(method="semantic") (the [semantic] extra)
  feedback   default, then "less like this" on 5 of its top 25 that are not of the
             category, ranked again: precision@25 before and after, on the same candidates
             (the next ranking of the same day) and on the others (the 5 disliked left out
             of both orders: what the profile learned for papers it has not seen)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402

from digestd.models import Paper, PaperMatch  # noqa: E402
from digestd.relevance import profile as P  # noqa: E402
from digestd.relevance.rank import rank  # noqa: E402
from digestd.render import by_relevance  # noqa: E402

DEFAULT_FILE = ROOT.parent / "shared" / "relevance" / "arxiv-2025-05-27.json"
if not DEFAULT_FILE.exists():
    DEFAULT_FILE = Path("/work/shared/relevance/arxiv-2025-05-27.json")
RESULTS = ROOT / "bench" / "results"


def load(path: Path) -> tuple[list[Paper], list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    papers = [Paper(id=f"arxiv:{r['id']}", title=r["title"], abstract=r.get("abstract") or "",
                    authors=tuple(r.get("authors") or ()),
                    categories=tuple(r.get("categories") or ())) for r in data]
    return papers, [r.get("primary") or (r.get("categories") or [""])[0] for r in data]


def metrics(ranked_rel: list[bool], n_rel: int) -> dict[str, float]:
    """precision@10, @25 and binary nDCG@25 of one ranking (relevance flags, best first)."""
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(ranked_rel[:25]) if r)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(25, n_rel)))
    return {"p10": sum(ranked_rel[:10]) / 10, "p25": sum(ranked_rel[:25]) / 25,
            "ndcg25": dcg / ideal if ideal else 0.0}


def baseline_order(seeds: list[Paper], cands: list[Paper]) -> list[int]:
    vec = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    texts = [f"{p.title} {p.abstract}" for p in (*cands, *seeds)]
    m = vec.fit_transform(texts)
    cent = np.asarray(m[len(cands):].mean(axis=0)).ravel()
    cent /= np.linalg.norm(cent) or 1.0
    s = m[:len(cands)] @ cent
    return list(np.argsort(-s, kind="stable"))


def today_order(cands: list[Paper]) -> list[int]:
    pos = {id(p): i for i, p in enumerate(cands)}
    return [pos[id(m.paper)] for m in by_relevance([PaperMatch(p, ()) for p in cands])]


def ours_order(seeds, cands, method, negatives=()) -> list[int]:
    pos = {id(p): i for i, p in enumerate(cands)}
    return [pos[id(r.paper)] for r in rank(seeds, cands, negatives, method=method,
                                           explain=False)]


def run(path: Path, draws: int, n_seeds: int, min_papers: int, seed: int,
        semantic: bool) -> dict:
    papers, primary = load(path)
    counts = Counter(primary)
    cats = sorted(c for c, n in counts.items() if n >= min_papers)
    methods = ["random", "today", "baseline", "default"] + (["semantic"] if semantic else [])
    per: dict[str, dict[str, list[dict]]] = {m: {c: [] for c in cats} for m in methods}
    took = Counter()
    feedback = {c: {k: [] for k in ("same_before", "same_after", "held_before", "held_after")}
                for c in cats}
    expected = []
    for c in cats:
        members = [i for i, p in enumerate(primary) if p == c]
        for d in range(draws):
            rng = random.Random(f"{seed}:{c}:{d}")
            chosen = set(rng.sample(members, n_seeds))
            seeds = [papers[i] for i in sorted(chosen)]
            cand_idx = [i for i in range(len(papers)) if i not in chosen]
            cands = [papers[i] for i in cand_idx]
            rel = [primary[i] == c for i in cand_idx]
            n_rel = sum(rel)
            expected.append(n_rel / len(cands))
            for m in methods:
                t0 = time.perf_counter()
                if m == "random":
                    order = list(range(len(cands)))
                    rng.shuffle(order)
                elif m == "today":
                    order = today_order(cands)
                elif m == "baseline":
                    order = baseline_order(seeds, cands)
                else:
                    order = ours_order(seeds, cands, "tfidf" if m == "default" else m)
                took[m] += time.perf_counter() - t0
                per[m][c].append(metrics([rel[i] for i in order], n_rel))
                if m == "default":
                    # "less like this" on the first 5 of the top 25 not of the category
                    disliked = [i for i in order[:25] if not rel[i]][:5]
                    neg = [cands[i] for i in disliked]
                    # the next ranking of the same papers: the disliked ones among them
                    after = ours_order(seeds, cands, "tfidf", neg)
                    feedback[c]["same_before"].append(per[m][c][-1]["p25"])
                    feedback[c]["same_after"].append(
                        metrics([rel[i] for i in after], n_rel)["p25"])
                    # held out: the disliked papers leave the candidates, as they would not
                    # come again on another day; what changes is the rest's order
                    gone = set(disliked)
                    rest = [i for i in range(len(cands)) if i not in gone]
                    after = ours_order(seeds, [cands[i] for i in rest], "tfidf", neg)
                    feedback[c]["held_before"].append(
                        metrics([rel[i] for i in order if i not in gone], n_rel)["p25"])
                    feedback[c]["held_after"].append(
                        metrics([rel[rest[k]] for k in after], n_rel)["p25"])
    base_rate = sum(expected) / len(expected)

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    rows = []
    for m in methods:
        allm = [x for c in cats for x in per[m][c]]
        row = {"method": m, "p10": mean([x["p10"] for x in allm]),
               "p25": mean([x["p25"] for x in allm]),
               "ndcg25": mean([x["ndcg25"] for x in allm]),
               "ms_per_ranking": 1000 * took[m] / len(allm),
               "per_category": {c: {"p25": mean([x["p25"] for x in per[m][c]]),
                                    "lift": mean([x["p25"] for x in per[m][c]])
                                    / (counts[c] - n_seeds) * (len(papers) - n_seeds)}
                                for c in cats}}
        row["lift"] = row["p25"] / base_rate
        rows.append(row)
    by = {r["method"]: r for r in rows}
    fb = {k: mean([x for c in cats for x in feedback[c][k]])
          for k in ("same_before", "same_after", "held_before", "held_after")}
    goals = {"default_vs_baseline": by["default"]["lift"] / by["baseline"]["lift"],
             **{f"feedback_p25_{k}": v for k, v in fb.items()},
             "feedback_raises_p25": fb["same_after"] > fb["same_before"]}
    if semantic:
        goals["semantic_vs_baseline"] = by["semantic"]["lift"] / by["baseline"]["lift"]
    return {"file": str(path), "papers": len(papers),
            "categories": {c: counts[c] for c in cats}, "draws": draws, "seeds": n_seeds,
            "seed": seed, "random_p25_expected": base_rate, "methods": rows, "goals": goals,
            "settings": {"alpha": P.ALPHA, "gamma": P.GAMMA, "background": P.BACKGROUND},
            "python": platform.python_version(),
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def table(res: dict) -> str:
    cats = ", ".join(f"{c} {n}" for c, n in res["categories"].items())
    lines = [(f"{res['papers']} papers; categories with >= 20: {cats}; "
              f"{res['draws']} draws x {res['seeds']} seeds each; "
              f"random p@25 expected {res['random_p25_expected']:.3f}"), "",
             "| method | p@10 | p@25 | nDCG@25 | lift | ms/ranking |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in res["methods"]:
        lines.append(f"| {r['method']} | {r['p10']:.3f} | {r['p25']:.3f} | {r['ndcg25']:.3f} "
                     f"| {r['lift']:.2f} | {r['ms_per_ranking']:.0f} |")
    g = res["goals"]
    lines.append("")
    lines.append(f"default / baseline lift: {g['default_vs_baseline']:.3f}")
    if "semantic_vs_baseline" in g:
        lines.append(f"semantic / baseline lift: {g['semantic_vs_baseline']:.3f}")
    lines.append(f"feedback, less like this on 5 of the top 25 not of the category: p@25 of "
                 f"the next ranking of the same papers {g['feedback_p25_same_before']:.3f} -> "
                 f"{g['feedback_p25_same_after']:.3f}; of the others (the disliked left out) "
                 f"{g['feedback_p25_held_before']:.3f} -> {g['feedback_p25_held_after']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--min-papers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--no-semantic", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    semantic = not args.no_semantic
    if semantic:
        from digestd.relevance.semantic import available
        semantic = available()
    res = run(args.file, args.draws, args.seeds, args.min_papers, args.seed, semantic)
    text = table(res)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stem = f"relevance-{args.file.stem}"
        (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / f"{stem}.txt").write_text(text + "\n")
    print(json.dumps(res, indent=1) if args.json else text)
    g = res["goals"]
    ok = g["default_vs_baseline"] >= 1 and g["feedback_raises_p25"] and (
        g.get("semantic_vs_baseline", 1.1) >= 1.1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
