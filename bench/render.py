"""What the build spends on one digest besides the store: today's order, the message
(Renderer.message: frames, papers, MIME) and its packing (store.pack_message), against the
standard library's email package building a message of the same two bodies, in turns.

    python bench/render.py                     # 2,000 digests of 17 papers, 5 rounds
    python bench/render.py --json

The digests are one reader's: 17 papers of the corpus (tests/data/hf_listings.json) that
three rules match, for 2,000 subscribers, as the daily build renders them (each paper's
blocks once, each digest's links, frames and MIME). The baseline is email.message's
EmailMessage with the same text and HTML (set_content, add_alternative, as_bytes): what a
digest would cost built the plain way, without packing. Both sides run in the same process,
round after round, so a shared machine slows both alike; the ratio is the figure to compare.

The CPU of a few hundred digests is too little to time on a shared machine to a few
percent; callgrind counts instructions, which do not move. The instructions a digest costs
are the difference of two runs:

    valgrind --tool=callgrind python bench/render.py --digests 0 --rounds 1 --ours-only
    valgrind --tool=callgrind python bench/render.py --digests 200 --rounds 1 --ours-only
    # ("Collected" of the second minus the first) / 200: a digest's order, message, packing
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digestd.match import Matcher  # noqa: E402
from digestd.models import Digest, Paper, Subscriber  # noqa: E402
from digestd.ranking import todays_order  # noqa: E402
from digestd.render import Links, Renderer  # noqa: E402
from digestd.store import pack_message  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "hf_listings.json"
RULES = ("diffusion", '"language model" OR llm*', "title:(transformer OR attention)")
PAPERS = 17  # a digest's papers at 100,000 subscribers x 3,000 papers (bench/cycle.py)


def digests(count: int) -> tuple[Renderer, list[Digest], list]:
    """A renderer and `count` digests (one per subscriber) of the same PAPERS matches."""
    records = [r for r in json.loads(CORPUS.read_text(encoding="utf-8")) if r.get("title")]
    papers = [Paper(id=f"arxiv:2611.{i:05d}", title=r["title"], abstract=r.get("abstract", ""),
                    authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
                    categories=("cs.LG", "cs.CL"), source="arxiv",
                    url=f"https://arxiv.org/abs/2611.{i:05d}",
                    pdf_url=f"https://arxiv.org/pdf/2611.{i:05d}", published="2026-11-28")
              for i, r in enumerate(records)]
    items = Matcher({0: RULES}).match(papers, exclude={})[0][:PAPERS]
    renderer = Renderer(links=Links("https://digest.example.org", b"k" * 32),
                        from_addr="Paper digest <digest@example.org>")
    out = []
    for i in range(count):
        order = todays_order(items)
        out.append(Digest(subscriber=Subscriber(id=i, email=f"reader{i}@example.org",
                                                rules=RULES, name="A Reader"),
                          period="2026-11-29", items=tuple(order.items), papers_checked=655,
                          ordered=True, whys=tuple(order.whys)))
    return renderer, out, items


def ours(renderer: Renderer, batch: list[Digest], items, now: datetime) -> float:
    """CPU seconds a digest: today's order, the message, its packing."""
    started = time.process_time()
    for digest in batch:
        todays_order(items)
        pack_message(renderer.message(digest, now=now)[1], crlf=True)
    return (time.process_time() - started) / max(len(batch), 1)


def stdlib(bodies: list[tuple[str, str, Digest]]) -> float:
    """CPU seconds a message built by the email package from the same bodies."""
    started = time.process_time()
    for text, html, digest in bodies:
        msg = EmailMessage()
        msg["From"] = "Paper digest <digest@example.org>"
        msg["To"] = digest.subscriber.email
        msg["Subject"] = "Paper digest 2026-11-29: 17 new papers"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        msg.as_bytes()
    return (time.process_time() - started) / max(len(bodies), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digests", type=int, default=2000, help="digests a round (2000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds, each side in turn (5)")
    ap.add_argument("--ours-only", action="store_true",
                    help="leave out the email package's side: what callgrind should count "
                         "when comparing two versions of digestd")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    renderer, batch, items = digests(args.digests)
    now = datetime(2026, 11, 29, 7, tzinfo=timezone.utc)
    for digest in batch[:20]:  # the papers' blocks and the caches of a run, filled
        renderer.message(digest, now=now)
    bodies = [] if args.ours_only else [
        (*renderer.render(d), d) for d in batch[:max(len(batch) // 4, 1)]]
    rounds = []
    for _ in range(args.rounds if batch else 0):
        rounds.append((ours(renderer, batch, items, now),
                       None if args.ours_only else stdlib(bodies)))
    size = len(renderer.message(batch[0], now=now)[1]) if batch else 0
    result = {
        "machine": f"{platform.node()} {platform.python_version()}",
        "digests": args.digests, "papers": PAPERS, "message_bytes": size,
        "ours_us": [round(a * 1e6, 1) for a, _ in rounds],
        "stdlib_us": [round(b * 1e6, 1) for _, b in rounds if b is not None],
        "ratio_median": round(statistics.median(a / b for a, b in rounds), 3)
        if rounds and not args.ours_only else None,
    }
    if args.json:
        print(json.dumps(result))
    elif rounds and args.ours_only:
        print(f"{args.digests} digests of {PAPERS} papers ({size / 1000:.0f} KB) a round: "
              f"order + message + packing {statistics.median(result['ours_us']):.0f} us of "
              "CPU a digest")
    elif rounds:
        print(f"{args.digests} digests of {PAPERS} papers ({size / 1000:.0f} KB) a round: "
              f"order + message + packing {statistics.median(result['ours_us']):.0f} us of "
              f"CPU a digest, the email package {statistics.median(result['stdlib_us']):.0f} us "
              f"for a message of the same bodies; median ratio {result['ratio_median']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
