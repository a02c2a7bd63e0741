"""Rebuild digestd/data/sample_papers.json, the demo's papers, from one real day of arXiv.

    python bench/make_sample.py [--day /work/shared/relevance/arxiv-2025-05-27.json]

The day is the arXiv listing of 2025-05-27 (see digestd/data/README.md for its source and
licence). 300 of its 649 papers are kept, a deterministic choice: every paper whose primary
category is not one of the two big ones (cs.CV, cs.CL), so the rarer fields stay for trying
`cat:` rules, and evenly spaced papers (in id order) of cs.CV and cs.CL for the rest, so the
demo's subscribers (language models, diffusion, reinforcement; detection, segmentation, 3D)
each get a realistic share. Text is cleaned here with the project's own cleaning, as the
arXiv RSS source does (titles, abstracts and names are TeX), so the data needs none at runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digestd.sources.clean import clean_abstract, clean_title, split_authors
from digestd.sources.ids import arxiv_urls

DAY = Path("/work/shared/relevance/arxiv-2025-05-27.json")
OUT = ROOT / "digestd" / "data" / "sample_papers.json"
ANNOUNCED = "2025-05-27"
SIZE = 300
BIG = ("cs.CV", "cs.CL")


def evenly(items: list, k: int) -> list:
    """`k` of `items`, evenly spaced, first one included."""
    if k >= len(items):
        return list(items)
    return [items[i * len(items) // k] for i in range(k)]


def choose(day: list[dict], size: int = SIZE) -> list[dict]:
    day = sorted(day, key=lambda r: r["id"])
    chosen = [r for r in day if r["primary"] not in BIG]
    left = size - len(chosen)
    for n, cat in enumerate(BIG):
        of_cat = [r for r in day if r["primary"] == cat]
        share = left // (len(BIG) - n)
        chosen += evenly(of_cat, share)
        left -= share
    return sorted(chosen, key=lambda r: r["id"])


def paper(r: dict) -> dict:
    url, pdf_url = arxiv_urls(r["id"])
    # the primary category first, as arXiv lists them
    categories = list(dict.fromkeys([r["primary"], *r["categories"]]))
    return {"id": f"arxiv:{r['id']}", "title": clean_title(r["title"], tex=True, plain=True),
            "abstract": clean_abstract(r["abstract"], tex=True, plain=True),
            "authors": list(split_authors(", ".join(r["authors"]), tex=True)),
            "categories": categories, "url": url, "pdf_url": pdf_url, "published": ANNOUNCED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=Path, default=DAY)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    papers = [paper(r) for r in choose(json.loads(args.day.read_text(encoding="utf-8")))]
    assert len(papers) == SIZE and all(p["title"] for p in papers)
    args.out.write_text(json.dumps(papers, ensure_ascii=False, indent=0) + "\n",
                        encoding="utf-8")
    print(f"{len(papers)} papers -> {args.out}")


if __name__ == "__main__":
    main()
