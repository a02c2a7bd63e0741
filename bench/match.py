"""Benchmark the Matcher: N subscribers x 5 rules against 2,000 papers, vs the direct evaluator.

    python bench/match.py                       # 10,000 and 100,000 subscribers, a table
    python bench/match.py --subscribers 5000 --json
    python bench/match.py --corpus /path/to/hf_listings.json

Rules and papers are generated deterministically (seeded) from the corpus vocabulary. Each
size runs in its own process so that its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digestd import rules as R  # noqa: E402
from digestd.match import Matcher  # noqa: E402
from digestd.models import Paper  # noqa: E402
from digestd.text import words  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "hf_listings.json"
RULES_PER_SUBSCRIBER = 5

STOPWORDS = frozenset("""
a an and are as at be been but by can could do does for from has have how in into is it its
may more most not of on or our over such than that the their then these this those through to
under use used using via was we were what when where which while who will with without
""".split())
CATEGORIES = (["cs.LG"] * 8 + ["cs.CL"] * 6 + ["cs.CV"] * 6 + ["cs.AI"] * 4 + ["stat.ML"] * 3
              + ["cs.RO", "cs.IR", "cs.CR", "cs.NE", "eess.IV", "eess.AS", "math.OC", "q-bio.NC"])
SOURCES = ["arxiv-cs", "arxiv-stat", "hf-daily", "biorxiv"]
FIRST = ("Ada Alan Anna Bo Chen Daniel Elena Fei Grace Hiro Ilya Jun Kai Lena Li Maria Mei "
         "Noam Omar Pablo Quoc Ravi Sara Tom Wei Xin Yann Yoshua Zoë José Łukasz").split()
# Last names from syllables: a few thousand, so an author rule matches a handful of papers.
_SYLLABLES = ("ba ko ri chen mu ler wa tan ga zhi lo vi sen ber ho na dé kim sa to "
              "ru pol ia nov ski lee mar tin ez gu").split()


def last_names(rng: random.Random, count: int = 4000) -> list[str]:
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).title())
    return sorted(names)


# --- corpus -> papers ----------------------------------------------------------------------


def load_corpus(path: Path) -> list[dict]:
    records = json.loads(path.read_text(encoding="utf-8"))
    return [r for r in records if r.get("title")]


def make_papers(records: list[dict], count: int, rng: random.Random,
                names: list[str]) -> list[Paper]:
    """`count` papers: the corpus records, then perturbed copies (sentences mixed between two
    records, some dropped), each with synthetic authors, categories and a source."""
    papers = []
    for i in range(count):
        base = records[i % len(records)]
        title, abstract = base["title"], base.get("abstract") or ""
        if i >= len(records):
            other = rng.choice(records)
            mine = [s for s in abstract.split(". ") if s]
            theirs = [s for s in (other.get("abstract") or "").split(". ") if s]
            mixed = rng.sample(mine, max(1, len(mine) * 2 // 3)) + rng.sample(
                theirs, min(len(theirs), 2))
            rng.shuffle(mixed)
            abstract = ". ".join(mixed)
            head = title.split()
            head[rng.randrange(len(head))] = rng.choice(other["title"].split())
            title = " ".join(head)
        authors = tuple(f"{rng.choice(FIRST)} {rng.choice(names)}"
                        for _ in range(rng.randint(1, 8)))
        cats = tuple(dict.fromkeys(rng.choice(CATEGORIES) for _ in range(rng.randint(1, 3))))
        papers.append(Paper(id=f"arxiv:2611.{i:05d}", title=title, abstract=abstract,
                            authors=authors, categories=cats, source=rng.choice(SOURCES),
                            published="2026-11-23"))
    return papers


# --- corpus vocabulary -> rules ------------------------------------------------------------


class RuleGenerator:
    """Rules a subscriber might write, from words and bigrams specific enough to be useful:
    a word in 1-5 corpus records, a phrase in 1-4 (on a 2,000-paper day that is a handful of
    papers per rule, the size of a digest one reads)."""

    def __init__(self, records: list[dict], rng: random.Random, names: list[str]) -> None:
        self.rng = rng
        self.names = names
        doc_words: list[list[str]] = []
        df: Counter[str] = Counter()
        bigram_df: Counter[tuple[str, str]] = Counter()
        for r in records:
            title, abstract = words(r["title"]), words(r.get("abstract") or "")
            doc_words.append(title + abstract)
            df.update(set(title + abstract))
            bigram_df.update({(a, b) for part in (title, abstract) for a, b in pairwise(part)
                              if a not in STOPWORDS and b not in STOPWORDS
                              and len(a) > 2 and len(b) > 2 and not (a + b).isdigit()})
        good = [w for w, n in df.items() if 1 <= n <= 5 and len(w) >= 4 and w not in STOPWORDS
                and not w.isdigit()]
        self.words = sorted(good)
        self.common = sorted(w for w, n in df.items() if 20 <= n <= 200 and w not in STOPWORDS
                             and len(w) >= 4)
        self.phrases = sorted(b for b, n in bigram_df.items() if 1 <= n <= 4)
        # A prefix of a rare word can still be common ("result*" from "resultant"): keep the
        # ones whose words, all together, are in at most 5 records.
        reach: Counter[str] = Counter()
        for w, n in df.items():
            for k in (5, 6, 7):
                if len(w) >= k:
                    reach[w[:k]] += n
        self.prefixes = sorted({w[:k] for w in self.words for k in (5, 6, 7)
                                if len(w) > k and reach[w[:k]] <= 5})
        good_set = set(good)
        self.docs = [sorted({w for w in ws if w in good_set}) for ws in doc_words[:200]]
        self.docs = [d for d in self.docs if len(d) >= 2]

    def word(self) -> str:
        return self.rng.choice(self.words)

    def phrase(self) -> str:
        a, b = self.rng.choice(self.phrases)
        return f'"{a} {b}"' if self.rng.random() < 0.8 else f"{a}-{b}"

    def prefix(self) -> str:
        return self.rng.choice(self.prefixes) + "*"

    def atom(self) -> str:
        roll = self.rng.random()
        return self.word() if roll < 0.5 else self.phrase() if roll < 0.85 else self.prefix()

    def rule(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.22:
            return self.word()
        if roll < 0.42:
            return self.phrase()
        if roll < 0.50:
            return self.prefix()
        if roll < 0.58:  # two words of one paper, so the AND can match
            a, b = rng.sample(rng.choice(self.docs), 2)
            return f"{a} {b}" if rng.random() < 0.7 else f"{a} AND {b}"
        if roll < 0.66:
            return f"{rng.choice(self.common)} {self.atom()} -{rng.choice(self.common)}"
        if roll < 0.74:
            return f"{self.atom()} OR {self.atom()}"
        if roll < 0.82:
            field = rng.choice(["title", "title", "abstract"])
            if rng.random() < 0.5:
                return f"{field}:{self.atom()}"
            return f"{field}:({self.atom()} OR {self.atom()})"
        if roll < 0.90:
            name = rng.choice(self.names)
            return f"author:{name}" if rng.random() < 0.6 else f'author:"{rng.choice(FIRST)} {name}"'
        if roll < 0.97:
            cat = rng.choice(["cs.CV", "cs.CL", "cs.RO", "cs.*", "stat.ML", "eess.*"])
            return f"category:{cat} {self.atom()}"
        return f"source:{rng.choice(SOURCES)} {self.atom()}"


def make_subscribers(gen: RuleGenerator, count: int, rng: random.Random) -> dict[int, list[str]]:
    """Half of all rules come from a pool of popular ones (Zipf-like), so rules are shared."""
    popular = [gen.rule() for _ in range(3000)]
    subs = {}
    for key in range(count):
        row = []
        for _ in range(RULES_PER_SUBSCRIBER):
            if rng.random() < 0.5:
                row.append(popular[int(len(popular) * rng.random() ** 2)])
            else:
                row.append(gen.rule())
        subs[key] = row
    return subs


# --- one size ------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def direct(subs: dict[int, list[str]], papers: list[Paper],
           split: list[R.Fields] | None = None) -> dict[int, list[tuple]]:
    """The direct evaluator: every rule of every subscriber against every paper.

    With `split`, the papers' words are computed once instead of per evaluation: the
    loop a careful programmer would write without an index, a fairer baseline.
    """
    out = {}
    for key, texts in subs.items():
        nodes = [R.parse(t) for t in texts]
        found = []
        for k, paper in enumerate(papers):
            if split is None:
                idx = [i for i, n in enumerate(nodes) if R.evaluate(n, paper)]
            else:
                idx = [i for i, n in enumerate(nodes) if R._evaluate(n, split[k])]
            if idx:
                found.append((paper.id, idx))
        if found:
            out[key] = found
    return out


def run_one(subscribers: int, corpus: Path, n_papers: int, sample: int, seed: int) -> dict:
    rng = random.Random(seed)
    records = load_corpus(corpus)
    names = last_names(rng)
    papers = make_papers(records, n_papers, rng, names)
    gen = RuleGenerator(records, rng, names)
    subs = make_subscribers(gen, subscribers, rng)
    rss_inputs = peak_rss_mib()

    # Wall time is the number that counts; CPU time too, since the box may be shared.
    t0, c0 = time.perf_counter(), time.process_time()
    matcher = Matcher(subs)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    result = matcher.match(papers)
    match, match_cpu = time.perf_counter() - t0, time.process_time() - c0
    # match() pauses the cyclic GC; its first pass over the new objects comes due right
    # after, in the caller. Measured apart, so it is counted and seen.
    t0 = time.perf_counter()
    gc.collect(0)
    gc_young = time.perf_counter() - t0
    rss_peak = peak_rss_mib()

    paper_matches = sum(len(v) for v in result.values())
    rule_matches = sum(len(pm.rules) for v in result.values() for pm in v)

    # Baseline on a sample of subscribers, scaled up; it also checks the answers agree.
    keys = random.Random(seed + 1).sample(sorted(subs), min(sample, len(subs)))
    t0 = time.perf_counter()
    expected = direct({k: subs[k] for k in keys}, papers)
    direct_sample = time.perf_counter() - t0
    got = {k: [(pm.paper.id, [r.index for r in pm.rules]) for pm in result[k]]
           for k in keys if k in result}
    direct_estimate = direct_sample * len(subs) / len(keys)
    t0 = time.perf_counter()
    split = [R.Fields(p) for p in papers]  # once for everyone: not scaled up
    t1 = time.perf_counter()
    assert direct({k: subs[k] for k in keys}, papers, split) == expected
    split_estimate = (t1 - t0) + (time.perf_counter() - t1) * len(subs) / len(keys)
    return {
        "subscribers": subscribers, "rules": subscribers * RULES_PER_SUBSCRIBER,
        "papers": len(papers), **{f"index_{k}": v for k, v in matcher.stats.items()
                                  if k != "subscribers"},
        "build_s": round(build, 3), "match_s": round(match, 3),
        "build_cpu_s": round(build_cpu, 3), "match_cpu_s": round(match_cpu, 3),
        "gc_after_s": round(gc_young, 3),
        "peak_rss_mib": round(rss_peak, 1), "inputs_rss_mib": round(rss_inputs, 1),
        "paper_matches": paper_matches, "rule_matches": rule_matches,
        "subscribers_matched": len(result),
        "matches_per_subscriber": round(paper_matches / subscribers, 2),
        "direct_sample_subscribers": len(keys), "direct_sample_s": round(direct_sample, 3),
        "direct_estimate_s": round(direct_estimate, 1),
        "speedup": round(direct_estimate / (match + gc_young), 1),
        "speedup_incl_build": round(direct_estimate / (build + match + gc_young), 1),
        "direct_split_estimate_s": round(split_estimate, 1),
        "speedup_vs_split": round(split_estimate / (match + gc_young), 1),
        "sample_agrees": got == expected,
    }


COLUMNS = [("subscribers", "subscribers", "{:,}"), ("rules", "rules", "{:,}"),
           ("index_rules", "distinct", "{:,}"), ("index_atoms", "atoms", "{:,}"),
           ("build_s", "build s", "{:.2f}"), ("match_s", "match s", "{:.2f}"),
           ("match_cpu_s", "match cpu s", "{:.2f}"), ("gc_after_s", "gc after s", "{:.2f}"),
           ("peak_rss_mib", "peak MiB", "{:.0f}"), ("paper_matches", "matches", "{:,}"),
           ("matches_per_subscriber", "per sub", "{:.1f}"),
           ("direct_estimate_s", "direct s (est)", "{:,.0f}"), ("speedup", "speedup", "{:,.0f}x"),
           ("sample_agrees", "agrees", "{}")]


def print_table(rows: list[dict]) -> None:
    cells = [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    heads = [head for _, head, _ in COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))
    for row in rows:
        print(f"subscribers={row['subscribers']} papers={row['papers']} "
              f"rule_texts={row['index_rule_texts']} multi_clauses={row['index_multi_clauses']} "
              f"tree_rules={row['index_tree_rules']} inputs_rss_mib={row['inputs_rss_mib']} "
              f"direct_sample={row['direct_sample_subscribers']}subs/{row['direct_sample_s']}s "
              f"speedup_incl_build={row['speedup_incl_build']}x "
              f"direct_presplit_est={row['direct_split_estimate_s']}s "
              f"speedup_vs_presplit={row['speedup_vs_split']}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--sample", type=int, default=10,
                        help="subscribers run through the direct evaluator (default 10)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    if len(args.subscribers) == 1:
        row = run_one(args.subscribers[0], args.corpus, args.papers, args.sample, args.seed)
        rows = [row]
    else:
        rows = []
        for n in args.subscribers:  # a fresh process per size: peak RSS is per size
            cmd = [sys.executable, __file__, "--subscribers", str(n), "--corpus",
                   str(args.corpus), "--papers", str(args.papers), "--sample",
                   str(args.sample), "--seed", str(args.seed), "--json"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out)["runs"][0])
    if args.json:
        print(json.dumps({"runs": rows}))
    else:
        print_table(rows)
    return 0 if all(r["sample_agrees"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
