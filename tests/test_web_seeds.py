"""The preferences page's "Seed papers" card, through the real ASGI app: ids typed, BibTeX and
RIS uploads, what is reported, remove, CSRF, the upload limit, hostile titles."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest

from digestd.relevance.seeding import MAX_SEEDS
from digestd.store import StoredSeed
from digestd.web.app import MAX_SEED_BODY
from digestd.web.seeds import MAX_FILE

from .test_web import Site, csrf_of, subscribed

SEEDS = Path(__file__).parent / "data" / "seeds"


@pytest.fixture
def site(tmp_path, smtp_sink):
    s = Site(tmp_path, smtp_sink)
    yield s
    s.store.close()


def stored(site: Site) -> dict[str, StoredSeed]:
    sid = site.store.get_subscriber("ada@example.org").id
    return {s.paper_id: s for s in site.store.seeds(sid)}


def card(page: str) -> str:
    """The text of the "Seed papers" card, tags out and entities read."""
    m = re.search(r'<div class="card" id="seeds">(.*?)</div>\s*<div class="card"', page, re.S)
    assert m, page
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", m[1])).split())


async def add(client, prefs: str, csrf: str, *, ids: str = "", file: tuple | None = None):
    """POST the card's form as a browser does (multipart/form-data), follow the redirect."""
    files = {"file": file} if file else {"file": ("", b"", "application/octet-stream")}
    r = await client.post(f"{prefs}/seeds", data={"csrf": csrf, "ids": ids}, files=files)
    if r.status_code != 303:
        return r, None
    assert r.headers["location"].startswith(f"{prefs}?done=seeded&report=")
    assert r.headers["location"].endswith("#seeds")
    return r, await client.get(r.headers["location"])


async def test_add_by_ids_reports_unknown_ones_and_remove(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        page = await client.get(prefs)
        assert 'enctype="multipart/form-data"' in page.text and "None yet." in card(page.text)
        csrf = csrf_of(page.text)
        # 2505.18291 is a stored paper; 2401.01234 and the DOI are not: reported, not dropped
        r, page = await add(client, prefs, csrf, ids="2505.18291 arXiv:2401.01234\n"
                            "https://doi.org/10.1145/3528223.3530127\nnonsense 2505.18291")
        text = card(page.text)
        assert ("Seed papers: kept 1 of 5 seeds (1 new); 2 unknown ids: arxiv:2401.01234, "
                "doi:10.1145/3528223.3530127; 1 given twice; 1 not read (below).") in text
        assert "not an arXiv id, DOI or URL: nonsense" in text
        assert "An unknown id names a paper that is not in our store" in text
        seeds = stored(site)
        assert list(seeds) == ["arxiv:2505.18291"]
        assert seeds["arxiv:2505.18291"].title.startswith("InstructPart")
        assert "InstructPart" in text and "arxiv:2505.18291" in text
        # the same report as the command line's, in the same words
        assert "kept 1 of 5 seeds" in text

        # a reload shows the page again and adds nothing
        again = await client.get(r.headers["location"])
        assert again.status_code == 200 and len(stored(site)) == 1
        # the report is for this subscriber only: another's page with its key shows none
        key = r.headers["location"].split("report=")[1].split("#")[0]
        bob = await subscribed(site, client, "bob@example.org")
        other = card((await client.get(f"{bob}?done=seeded&report={key}")).text)
        assert "Your seed papers are saved." in other and "kept" not in other

        # nothing given
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf, "ids": "  "},
                              files={"file": ("", b"", "application/octet-stream")})
        assert r.status_code == 400 and "Type arXiv ids or DOIs" in r.text

        # remove
        r = await client.post(f"{prefs}/seeds/remove", data={"csrf": csrf,
                                                             "id": "arxiv:2505.18291"})
        assert r.status_code == 303 and r.headers["location"] == (
            f"{prefs}?done=seed_removed#seeds")
        assert stored(site) == {}
        assert "Removed." in card((await client.get(r.headers["location"])).text)
        r = await client.post(f"{prefs}/seeds/remove", data={"csrf": csrf,
                                                             "id": "arxiv:2505.18291"})
        assert r.headers["location"].endswith("?done=seed_gone#seeds")


async def test_add_from_a_bibtex_and_an_ris_upload(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        bib = (SEEDS / "zotero.bib").read_bytes()
        r, page = await add(client, prefs, csrf, file=("My Library.bib", bib, "text/x-bibtex"))
        text = card(page.text)
        assert "Seed papers: kept 4 of 5 seeds (4 new); 1 not read (below)." in text
        assert "My Library.bib:51 noname_2023: no title and no arXiv id, DOI or URL" in text
        seeds = stored(site)
        assert seeds["arxiv:1706.03762"].title == "Attention Is All You Need"
        assert seeds["arxiv:1706.03762"].origin == "My Library.bib"
        assert "Toward Causal Representation Learning" in text and "from My Library.bib" in text

        # RIS, with ids typed in the same POST; a browser on Windows sends a whole path
        ris = (SEEDS / "mendeley.ris").read_bytes()
        r, page = await add(client, prefs, csrf, ids="2505.18291",
                            file=(r"C:\Users\ada\mendeley.ris", ris, "application/x-research"))
        text = card(page.text)
        assert "kept 4 of 5 seeds (4 new); 1 not read (below)" in text
        seeds = stored(site)
        assert seeds["arxiv:2106.09685"].origin == "mendeley.ris"
        assert seeds["arxiv:2505.18291"].origin == ""
        assert len(seeds) == 8 and "8 of at most" in text
        # the same file again: nothing new
        r, page = await add(client, prefs, csrf, file=("mendeley.ris", ris, "text/plain"))
        assert "kept 3 of 4 seeds (0 new)" in card(page.text) and len(stored(site)) == 8

        # a file that is not text
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf},
                              files={"file": ("x.bib", b"\xff\xfe\x00garbage", "text/plain")})
        assert r.status_code == 400 and "not UTF-8 text" in r.text
        assert "Nothing was changed" in r.text and len(stored(site)) == 8


async def test_hostile_titles_and_file_names_are_escaped(site):
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    bib = (f"@article{{x1,\n  title = {{{evil} and a real title}},\n  year = 2020\n}}\n"
           f"@misc{{x2,\n  author = {{{evil}}}\n}}\n").encode()
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        r, page = await add(client, prefs, csrf, ids=evil,
                            file=(f"{evil}.bib", bib, "text/plain"))
        assert r.status_code == 303
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        text = card(page.text)
        assert "kept 1 of" in text and "and a real title" in text
        # typed garbage is reported, escaped
        assert "not an arXiv id, DOI or URL: <script>alert(1)</script><img" in text
        # kept by its title, under a key of its words only
        (seed,) = stored(site).values()
        assert seed.paper_id.startswith("title:")


async def test_seed_forms_need_the_csrf_token_and_cookie(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        bib = (SEEDS / "zotero.bib").read_bytes()
        r = await client.post(f"{prefs}/seeds", data={"ids": "2505.18291"},
                              files={"file": ("z.bib", bib, "text/plain")})
        assert r.status_code == 403
        r = await client.post(f"{prefs}/seeds", data={"csrf": "0" * 40, "ids": "2505.18291"},
                              files={"file": ("z.bib", bib, "text/plain")})
        assert r.status_code == 403
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf, "ids": "2505.18291"},
                              files={"file": ("z.bib", bib, "text/plain")},
                              headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        assert stored(site) == {}
        r, _page = await add(client, prefs, csrf, ids="2505.18291")
        assert len(stored(site)) == 1
        r = await client.post(f"{prefs}/seeds/remove", data={"id": "arxiv:2505.18291"})
        assert r.status_code == 403
    async with site.client() as other:  # another browser, with a copied token
        r = await other.post(f"{prefs}/seeds/remove", data={"csrf": csrf,
                                                            "id": "arxiv:2505.18291"})
        assert r.status_code == 403
    assert len(stored(site)) == 1


async def test_an_oversize_upload_is_refused_and_changes_nothing(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        # a file just over the limit inside a body the app reads: the card says why
        big = b"% padding\n" * (MAX_FILE // 10) + b"@misc{a, title={T}}\n" * 4
        assert MAX_FILE < len(big) < MAX_SEED_BODY - 4096
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf, "ids": "2505.18291"},
                              files={"file": ("big.bib", big, "text/plain")})
        assert r.status_code == 413 and "at most 2 MB" in r.text
        assert 'id="seeds"' in r.text  # the preferences page, with the card
        # a body past what the app reads at all: refused before reading it
        huge = b"x" * (MAX_SEED_BODY + 1)
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf, "ids": "2505.18291"},
                              files={"file": ("huge.bib", huge, "text/plain")})
        assert r.status_code == 413 and "at most 2 MB" in r.text
        assert "Back to your preferences" in r.text
        # other forms keep their small limit
        r = await client.post(prefs, data={"csrf": csrf},
                              files={"file": ("a.bib", b"x" * 70_000, "text/plain")})
        assert r.status_code == 413
    assert stored(site) == {}


async def test_the_number_of_seeds_is_capped(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        sid = site.store.get_subscriber("ada@example.org").id
        site.store.add_seeds(sid, [StoredSeed(f"title:paper {n}", f"Paper {n}")
                                   for n in range(MAX_SEEDS - 1)])
        csrf = csrf_of((await client.get(prefs)).text)
        r, page = await add(client, prefs, csrf,
                            file=("z.bib", (SEEDS / "zotero.bib").read_bytes(), "text/plain"))
        assert (f"kept 1 of 5 seeds (1 new); 3 more would pass the limit of {MAX_SEEDS} seeds: "
                "remove some first") in card(page.text)
        assert len(stored(site)) == MAX_SEEDS


async def test_seed_posts_are_rate_limited(site, monkeypatch):
    from digestd.web import guard

    monkeypatch.setattr(guard, "SEED_FILES_PER_IP", 2)
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        bib = ("z.bib", (SEEDS / "zotero.bib").read_bytes(), "text/plain")
        for _ in range(2):
            r, _page = await add(client, prefs, csrf, file=bib)
        r = await client.post(f"{prefs}/seeds", data={"csrf": csrf},
                              files={"file": bib})
        assert r.status_code == 429 and "Retry-After" in r.headers
        # ids alone are still taken
        r, _page = await add(client, prefs, csrf, ids="2505.18291")
        assert r.status_code == 303


async def test_seeds_are_in_download_my_data(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        csrf = csrf_of((await client.get(prefs)).text)
        await add(client, prefs, csrf, ids="2505.18291")
        data = (await client.get(f"{prefs}/data.json")).json()
    assert [s["id"] for s in data["seeds"]] == ["arxiv:2505.18291"]
