"""The built digest scores under 1.0 with SpamAssassin's rules (local tests only, no network).

Runs where the `spamassassin` command is installed (Debian: `apt-get install spamassassin`),
and is skipped otherwise. By hand: `digestd demo`, then
`spamassassin -L -t < digestd-demo/outbox/*.eml | tail -20`.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from digestd.render import Links, Renderer

from .test_render import corpus_digest

pytestmark = pytest.mark.skipif(not shutil.which("spamassassin"),
                                reason="spamassassin is not installed (apt-get install "
                                       "spamassassin)")


def test_a_25_paper_digest_scores_under_1(tmp_path):
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32,
                             archive_url="https://digest.example.org/a/{token}/{period}"),
                 from_addr="Paper digest <digest@example.org>")
    _, raw = r.message(corpus_digest(30))
    # -L: local tests only (no DNS blocklists: there is no network here, and a verdict must
    # not depend on it); -t: print the report
    done = subprocess.run(["spamassassin", "-L", "-t"],
                          input=raw, capture_output=True, timeout=120)
    report = done.stdout.decode("utf-8", "replace")
    m = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.M)
    assert m, report[-2000:]
    score = float(m[1])
    assert score < 1.0, report[report.find("Content analysis details"):]
