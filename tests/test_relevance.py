"""Relevance: seed files, TF-IDF and semantic vectors, profiles, scores, `digestd similar`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.preprocessing import normalize

from digestd.errors import DigestdError
from digestd.models import Paper
from digestd.relevance import profile as P
from digestd.relevance.rank import rank
from digestd.relevance.seedfile import parse_seeds, read_seeds, resolve
from digestd.relevance.similar import similar
from digestd.relevance.text import TfidfSpace, paper_text
from digestd.sources.sample import sample_papers

SEEDS = Path(__file__).parent / "data" / "seeds"


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    return sample_papers()


# -- seed files ----------------------------------------------------------------------------------

def test_zotero_bibtex():
    got = read_seeds(SEEDS / "zotero.bib")
    by_key = {s.where.split()[-1]: s for s in got.seeds}
    assert list(by_key) == ["vaswani_attention_2017", "ho_video_2022", "scholkopf_toward_2021",
                            "dupre_apprentissage_2019"]
    v = by_key["vaswani_attention_2017"]
    # url, arXiv's DOI and the note all name one paper: one id, braces gone
    assert (v.id, v.ids, v.title) == ("arxiv:1706.03762", ("arxiv:1706.03762",),
                                      "Attention Is All You Need")
    assert v.abstract.startswith("The dominant sequence transduction models")
    assert by_key["ho_video_2022"].id == "arxiv:2204.03458"  # versioned abs URL
    s = by_key["scholkopf_toward_2021"]
    assert s.id == "doi:10.1109/jproc.2021.3058954"
    assert s.ids[1:] == ("url:https://ieeexplore.ieee.org/document/9363924",)
    d = by_key["dupre_apprentissage_2019"]  # no id at all: kept by its title, accents decoded
    assert d.id == "" and d.title.startswith("Apprentissage automatique et réseaux")
    assert "à l'état de l'art" in d.title
    assert got.problems == ((f"{SEEDS / 'zotero.bib'}:51 noname_2023: "
                             "no title and no arXiv id, DOI or URL"),)


def test_google_scholar_bibtex_reports_the_broken_entry():
    got = read_seeds(SEEDS / "scholar.bib")
    assert [(s.id, s.title) for s in got.seeds] == [
        ("arxiv:2106.09685", "Lora: Low-rank adaptation of large language models"),
        ("", "Deep residual learning for image recognition"),
        ("", "Denoising diffusion probabilistic models"),
        ("arxiv:2112.10752", "High-Resolution Image Synthesis with Latent Diffusion Models"),
        ("", "Image quality assessment: from error visibility to structural similarity")]
    assert len(got.problems) == 1
    assert got.problems[0].startswith(f"{SEEDS / 'scholar.bib'}:34: not parsed: "
                                      "@article{broken2020,")


def test_mendeley_ris():
    got = read_seeds(SEEDS / "mendeley.ris")
    assert [(s.id, s.title[:30]) for s in got.seeds] == [
        ("doi:10.1145/3528223.3530127", "Instant Neural Graphics Primit"),
        ("arxiv:2106.09685", "LoRA: Low-Rank Adaptation of L"),
        ("", "U-Net: Convolutional Networks ")]
    assert got.seeds[0].abstract.startswith("We demonstrate near-instant training")
    assert got.problems == (f"{SEEDS / 'mendeley.ris'}:40: no title and no arXiv id, DOI or URL",)


def test_id_list_and_json():
    got = read_seeds(SEEDS / "ids.txt")
    assert [s.id for s in got.seeds] == [
        "arxiv:2204.03458", "arxiv:2112.10752", "arxiv:2505.18291", "arxiv:hep-th/9901001",
        "doi:10.1145/3528223.3530127", "doi:10.1109/jproc.2021.3058954"]
    assert got.problems == ((f"{SEEDS / 'ids.txt'}:8: not an arXiv id, DOI or URL: "
                             "not a paper id"),)
    text = json.dumps([{"id": "2401.01234", "title": "A", "abstract": "x"},
                       "https://arxiv.org/pdf/2402.00001v2", 7, {"authors": ["N"]}])
    got = parse_seeds(text, "json", name="p.json")
    assert [(s.id, s.title) for s in got.seeds] == [("arxiv:2401.01234", "A"),
                                                    ("arxiv:2402.00001", "")]
    assert got.problems == ("p.json: item 2: not a paper object",
                            "p.json: item 3: no title and no arXiv id, DOI or URL")
    with pytest.raises(DigestdError, match="expected a JSON array"):
        parse_seeds("{}", "json")


def test_unknown_ids_are_reported_not_dropped(papers):
    got = read_seeds(SEEDS / "ids.txt")
    known = {i: p for p in papers for i in p.ids}
    known["arxiv:2204.03458"] = Paper(id="arxiv:2204.03458", title="Video Diffusion Models")
    usable, unknown = resolve([*got.seeds, got.seeds[0]], known)
    assert [(s.id, s.title[:22]) for s in usable] == [
        ("arxiv:2204.03458", "Video Diffusion Models"), ("arxiv:2505.18291", "InstructPart: Task-Ori")]
    assert [s.id for s in unknown] == [
        "arxiv:2112.10752", "arxiv:hep-th/9901001",
        "doi:10.1145/3528223.3530127", "doi:10.1109/jproc.2021.3058954"]


# -- vectors, profiles, scores -----------------------------------------------------------------

def test_tfidf_space_is_deterministic_and_normalized(papers):
    texts = [paper_text(p.title, p.abstract) for p in papers[:50]]
    a, b = TfidfSpace.fit(texts), TfidfSpace.fit(texts[::-1])
    va, vb = a.vectors(texts), b.vectors(texts)
    assert list(a.terms) == list(b.terms)
    assert abs(va - vb).max() == 0
    assert np.allclose(sparse.linalg.norm(va, axis=1), 1, atol=1e-5)
    assert "state-of-the-art" in set(a.terms)  # hyphenated words stay one term


def test_iter_scores_is_the_cosine_with_the_rocchio_centroid():
    s = normalize(sparse.random(50, 300, density=0.05, random_state=1, format="csr",
                                dtype=np.float32))
    d = normalize(sparse.random(40, 300, density=0.05, random_state=2, format="csr",
                                dtype=np.float32))
    pos, neg = [[0, 1, 2], [3, 4], [5], []], [[6], [], [7, 8], []]
    w = P.profile_weights(pos, neg, 50)
    got = P.scores(w, s, d)
    mean = np.asarray(d.mean(axis=0)).ravel()
    for i in range(3):
        c = (w[i] @ s).toarray().ravel() - P.BACKGROUND * mean
        assert np.allclose(got[i], d @ (c / np.linalg.norm(c)), atol=1e-5)
    assert not got[3].any()  # an empty profile scores 0
    # in groups of one profile and slices of one paper; and dense vectors: the same
    small = np.vstack([b for _, b in P.iter_scores(w, s, d, chunk=1, group_bytes=1,
                                                     slice_bytes=1)])
    assert np.allclose(small, got, atol=1e-5)
    assert np.allclose(P.scores(w, s.toarray(), d.toarray()), got, atol=1e-5)


def test_rank_explains_with_shared_terms_and_the_closest_seed(papers):
    seeds = [p for p in papers if "diffusion" in p.title.lower()][:4]
    rest = [p for p in papers if p not in seeds]
    ranked = rank(seeds, rest, top=10)
    assert len(ranked) == 10 and ranked[0].score >= ranked[-1].score
    assert sum("diffusion" in r.paper.title.lower() for r in ranked[:5]) >= 3
    top = ranked[0]
    assert top.similar_to in {s.title for s in seeds}
    assert top.shares and len(top.shares) <= P.SHARED_TERMS
    assert top.why.startswith("shares: ") and " · similar to: " in top.why


def test_less_like_this_moves_a_paper_down(papers):
    seeds = [p for p in papers if "diffusion" in p.title.lower()][:4]
    rest = [p for p in papers if p not in seeds]
    before = [r.paper for r in rank(seeds, rest, explain=False)]
    disliked = before[1]
    after = [r.paper for r in rank(seeds, rest, [disliked], explain=False)]
    assert after.index(disliked) > before.index(disliked) + 10


# -- digestd similar ---------------------------------------------------------------------------

def test_similar_resolves_bare_ids_from_the_papers(papers):
    ids = "\n".join(p.id for p in papers if "diffusion" in p.title.lower()) + "\n2501.99999\n"
    got = similar(parse_seeds(ids, "ids"), papers, top=5)
    assert [s.id for s in got.unknown] == ["arxiv:2501.99999"]
    seed_ids = {s.id for s in got.seeds}
    assert len(got.ranked) == 5 and not seed_ids & {r.paper.id for r in got.ranked}
    with pytest.raises(DigestdError, match="no usable seed paper.*1 unknown id: arxiv:2501"):
        similar(parse_seeds("2501.99999", "ids"), papers)


# -- the semantic extra ------------------------------------------------------------------------

def test_semantic_extra_never_touches_the_network(monkeypatch, papers):
    pytest.importorskip("wordllama", reason="the [semantic] extra is not installed")
    from digestd.relevance import semantic

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no cached files either
    semantic._model.cache_clear()
    try:
        space = semantic.SemanticSpace.load()
        v = space.vectors(["video diffusion models", "speech recognition"])
        assert v.shape == (2, semantic.DIM) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
        import os
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        seeds = [p for p in papers if "diffusion" in p.title.lower()][:4]
        ranked = rank(seeds, [p for p in papers if p not in seeds], method="semantic", top=5)
        assert ranked[0].similar_to and not ranked[0].shares
    finally:
        semantic._model.cache_clear()


def test_similar_scores_semantic_papers_on_min_scores_scale(papers):
    """`digestd similar --method semantic` prints what min_score compares: the semantic
    cosine mapped onto the TF-IDF scale (ranking.SCALE), as the build does."""
    pytest.importorskip("wordllama", reason="the [semantic] extra is not installed")
    from digestd.ranking import SCALE
    from digestd.relevance.seedfile import SeedFile
    from digestd.relevance.similar import similar

    seeds = [p for p in papers if "diffusion" in p.title.lower()][:4]
    rest = [p for p in papers if p not in seeds]
    raw = rank(seeds, rest, method="semantic", top=5)
    got = similar(SeedFile(tuple(seeds)), rest, method="semantic", top=5).ranked
    a, b = SCALE["semantic"]
    assert [r.paper.id for r in got] == [r.paper.id for r in raw]
    assert all(abs(g.score - (a * r.score + b)) < 1e-6 for g, r in zip(got, raw))
    assert all(g.score < 0.3 for g in got)  # where min_score's choices are, not ~0.6


@pytest.fixture(scope="module")
def papers_file(tmp_path_factory, papers) -> Path:
    path = tmp_path_factory.mktemp("similar") / "papers.json"
    path.write_text(json.dumps([{"id": p.id.removeprefix("arxiv:"), "title": p.title,
                                 "abstract": p.abstract, "url": p.url} for p in papers]))
    return path


def test_similar_cli_with_two_files_needs_no_config(papers_file, capsys, monkeypatch, tmp_path):
    from digestd.cli import main

    monkeypatch.chdir(tmp_path)  # no digestd.toml here, and no store is made
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    assert main(["similar", "--seeds", str(SEEDS / "zotero.bib"), "--papers",
                 str(papers_file), "--top", "5"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("  1. 0.") and "similar to: " in lines[1]
    assert lines[-1] == (f"5 of 300 {papers_file}, by likeness to {SEEDS / 'zotero.bib'} "
                         "(kept 4 of 5 seeds; 1 entry not read)")
    assert "zotero.bib:51 noname_2023: no title and no arXiv id, DOI or URL" in err
    assert list(tmp_path.iterdir()) == []

    assert main(["similar", "--seeds", str(SEEDS / "zotero.bib"), "--papers",
                 str(papers_file), "--top", "7", "--json"]) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert len(got) == 7 and {"id", "title", "score", "why"} <= set(got[0])
    scores = [g["score"] for g in got]
    assert scores == sorted(scores, reverse=True)
    assert "kept 4 of 5 seeds" in err


def test_similar_cli_reports_unknown_ids(papers_file, capsys, tmp_path):
    from digestd.cli import main

    ids = tmp_path / "ids.txt"
    ids.write_text("arXiv:2505.18291\n10.1145/3528223.3530127\nnonsense\n")
    assert main(["similar", "--seeds", str(ids), "--papers", str(papers_file), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "2505.18291" not in {g["id"] for g in json.loads(out)}  # the seed is not ranked
    assert "kept 1 of 3 seeds; 1 unknown id: doi:10.1145/3528223.3530127; 1 entry not read" in err


# -- stored seeds ------------------------------------------------------------------------------

def test_subscribers_seed_add_list_remove(tmp_path, capsys):
    from digestd.cli import main
    from digestd.store import Store

    from .conftest import init_offline

    init_offline(tmp_path)
    cfg = ["--config", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "poll"]) == 0  # the bundled sample papers into the store
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    capsys.readouterr()
    # 2505.18291 is a stored paper (its text comes from the store); 2401.01234 is not;
    # 2112.10752 is given bare and in the file: once
    # and 2401.01234, unknown, in three spellings: unknown once, given twice twice
    assert main([*cfg, "subscribers", "seed", "a@example.org", "2505.18291", "2401.01234",
                 "arXiv:2112.10752", "arxiv:2401.01234", "https://arxiv.org/abs/2401.01234v3",
                 "--file", str(SEEDS / "scholar.bib")]) == 0
    out, err = capsys.readouterr()
    assert out == ("kept 6 of 11 seeds for a@example.org (6 new); 1 unknown id: "
                   "arxiv:2401.01234; 3 given twice; 1 not read (above)\n")
    assert "scholar.bib:34: not parsed" in err
    with Store(tmp_path / "digestd.sqlite3") as store:
        seeds = {s.paper_id: s for s in store.seeds(store.get_subscriber("a@example.org").id)}
    assert seeds["arxiv:2505.18291"].title.startswith("InstructPart")
    assert seeds["arxiv:2505.18291"].abstract and seeds["arxiv:2505.18291"].origin == ""
    assert seeds["arxiv:2112.10752"].origin == "scholar.bib"
    assert "title:deep residual learning for image recognition" in seeds

    assert main([*cfg, "subscribers", "seed", "a@example.org", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "6 seeds for a@example.org"
    ids = [x.strip() for x in lines[1:-1:2]]  # each title, then its id indented
    assert "arxiv:2505.18291" in ids and all(i.split(":")[0] in ("arxiv", "doi", "title")
                                             for i in ids)
    assert main([*cfg, "subscribers", "seed", "a@example.org", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 6 and {"id", "title", "origin", "added_at"} <= set(listed[0])
    assert main([*cfg, "subscribers", "seed", "a@example.org", "--remove",
                 "https://arxiv.org/abs/2505.18291", "doi:10.1/none"]) == 1
    assert capsys.readouterr().out == ("removed 1 of 2 seeds of a@example.org; not seeds of "
                                       "theirs: doi:10.1/none\n")
    assert main([*cfg, "subscribers", "seed", "a@example.org", "2401.01234"]) == 1
    assert "kept 0 of 1 seeds" in capsys.readouterr().out
    # similar --subscriber ranks the store's papers by the stored seeds
    assert main([*cfg, "similar", "--subscriber", "a@example.org", "--days", "30",
                 "--top", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert len(got) == 3 and got[0]["score"] >= got[2]["score"]
    assert "kept 5 of 5 seeds" in err
    assert main([*cfg, "subscribers", "remove", "a@example.org"]) == 0
    with Store(tmp_path / "digestd.sqlite3") as store:
        assert store.seeds_of() == {}  # gone with the subscriber


def test_day_scores_many_profiles_as_rank_does_one(papers):
    from digestd.relevance.day import DayScores, ProfileSeeds

    diffusion = [p for p in papers if "diffusion" in p.title.lower()][:4]
    speech = [p for p in papers if "speech" in p.title.lower()][:3]
    day_papers = [p for p in papers if p not in diffusion and p not in speech]
    profiles = {1: ProfileSeeds(tuple(diffusion)), 2: ProfileSeeds(tuple(speech)),
                3: ProfileSeeds(tuple(diffusion), (day_papers[0],)), 4: ProfileSeeds(())}
    day = DayScores.build(day_papers, profiles)
    assert len(day.seed_titles) == 8  # shared seeds vectorized once
    got = {k: b for keys, block in day.blocks(chunk=3) for k, b in zip(keys, block)}
    assert set(got) == {1, 2, 3, 4} and not got[4].any()
    for key in (1, 2):
        alone = rank(profiles[key].positives, day_papers, explain=False)
        assert [r.paper for r in alone[:10]] == [day_papers[j] for j in np.argsort(
            -got[key], kind="stable")[:10]]
    best = day.ranked(2, top=1)[0]
    assert best.similar_to in {p.title for p in speech} and best.why == day.why(
        2, day_papers.index(best.paper))


def test_subscribers_seed_takes_ids_after_its_options(tmp_path, capsys):
    from digestd.cli import main
    from digestd.store import Store

    from .conftest import init_offline

    init_offline(tmp_path)
    cfg = ["--config", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "poll"]) == 0
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    capsys.readouterr()
    # ids before, between and after the options are all ids
    assert main(["subscribers", "seed", "a@example.org", "2505.18291", "--file",
                 str(SEEDS / "mendeley.ris"), "2401.01234", *cfg, "hep-th/9901001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kept 4 of 7 seeds for a@example.org (4 new); 2 unknown ids: "
                          "arxiv:2401.01234, arxiv:hep-th/9901001; 1 not read (above)")
    with Store(tmp_path / "digestd.sqlite3") as store:
        seeds = {s.paper_id for s in store.seeds(store.get_subscriber("a@example.org").id)}
    assert "arxiv:2505.18291" in seeds and "arxiv:2106.09685" in seeds
    # an option it does not know is still an error, named alone
    with pytest.raises(SystemExit) as e:
        main([*cfg, "subscribers", "seed", "a@example.org", "--file", "x.bib", "2401.01234",
              "--bogus"])
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus\n" in capsys.readouterr().err
    # other commands take no loose arguments
    with pytest.raises(SystemExit):
        main([*cfg, "papers", "2401.01234"])
    assert "unrecognized arguments: 2401.01234" in capsys.readouterr().err


def test_similar_for_a_subscriber_learns_from_more_and_less_like_this(tmp_path, capsys):
    """`similar --subscriber`: the stored seeds and "more like this" papers are the profile's
    positives, "less like this" its negatives; none of them is ranked itself."""
    from digestd.cli import main
    from digestd.store import Store
    from digestd.store.feedback import LESS, MORE

    from .conftest import init_offline

    init_offline(tmp_path)
    cfg = ["--config", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "poll"]) == 0
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    with Store(tmp_path / "digestd.sqlite3") as store:
        papers = store.papers_since("0000")
        sid = store.get_subscriber("a@example.org").id
        diffusion = [p for p in papers if "diffusion" in p.title.lower()]
        speech = [p for p in papers if "speech" in p.title.lower()]
        pks = store.paper_pks(p.id for p in (*diffusion[:3], *speech[:3]))
    capsys.readouterr()

    def top(k: int = 10) -> list[dict]:
        assert main([*cfg, "similar", "--subscriber", "a@example.org", "--days", "30",
                     "--top", str(k), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    # no seeds and no feedback: nothing to rank by
    assert main([*cfg, "similar", "--subscriber", "a@example.org"]) == 1
    assert 'no seed papers and no "more like this"' in capsys.readouterr().err

    # "more like this" alone makes a profile
    with Store(tmp_path / "digestd.sqlite3") as store:
        for p in diffusion[:3]:
            store.record_feedback(sid, pks[p.id], MORE)
    liked = top()
    assert not {p.id for p in diffusion[:3]} & {g["id"] for g in liked}
    assert sum("diffusion" in g["title"].lower() for g in liked) >= 5
    assert main([*cfg, "similar", "--subscriber", "a@example.org", "--top", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(
        "by likeness to the seeds and feedback of a@example.org (kept 0 of 0 seeds; "
        "3 more like this, 0 less like this)")

    # a seed, and "less like this" on speech papers: those and their like go down
    assert main([*cfg, "subscribers", "seed", "a@example.org", speech[3].id]) == 0
    capsys.readouterr()
    before = top(300)
    with Store(tmp_path / "digestd.sqlite3") as store:
        for p in speech[:3]:
            store.record_feedback(sid, pks[p.id], LESS)
    after = top(300)
    disliked = {p.id for p in speech[:3]}
    assert disliked <= {g["id"] for g in before} and not disliked & {g["id"] for g in after}

    def place(ranking: list[dict]) -> float:
        spoken = [n for n, g in enumerate(ranking) if "speech" in g["title"].lower()]
        return sum(spoken) / len(spoken)

    assert place(after) > place(before)


def test_nearest_positives_without_the_kept_cosines_is_the_same(papers):
    """A day too large to keep every seed x paper cosine (profile.COSINE_BYTES) finds each
    paper's "similar to" seed from the rows themselves (profile.row_cosines): the same seed,
    and the same cosines as scipy's product."""
    from digestd.relevance.day import DayScores, ProfileSeeds

    rng = np.random.default_rng(7)
    day_papers, pool = papers[:60], papers[60:]
    profiles = {k: ProfileSeeds(tuple(pool[j] for j in rng.choice(len(pool), 1 + k % 9,
                                                                 replace=False)),
                                (day_papers[k % 7],) if k % 3 == 0 else ())
                for k in range(40)}
    day = DayScores.build(day_papers, profiles)
    day.keep_cosines()
    assert day.cosines is not None
    wanted = {k: sorted(rng.choice(len(day_papers), 1 + k % 12, replace=False).tolist())
              for k in profiles}
    kept = {k: day.nearest_positives(k, cols) for k, cols in wanted.items()}
    day.cosines = None  # as beyond COSINE_BYTES
    assert {k: day.nearest_positives(k, cols) for k, cols in wanted.items()} == kept
    assert day.nearest_positives(0, []) == []
    seeds, paper_vectors = day.seed_vectors, day.paper_vectors
    for k, cols in wanted.items():
        pos = day.positives[day.row[k]]
        got = P.row_cosines(seeds, pos, paper_vectors, cols)
        want = (seeds[pos] @ paper_vectors[cols].T).toarray()
        assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-6)
    # a paper asked for twice, and rows with a term twice (not canonical: they add up)
    twice = P.row_cosines(seeds, [0, 1, 2], paper_vectors, [4, 9, 4])
    assert np.allclose(twice, (seeds[[0, 1, 2]] @ paper_vectors[[4, 9, 4]].T).toarray(),
                       atol=1e-6)
    two = paper_vectors[[4, 9]]
    halves = sparse.csr_matrix(  # each entry twice, at half its value, in the same row
        (np.repeat(two.data / 2, 2), np.repeat(two.indices, 2), two.indptr * 2),
        shape=two.shape)
    assert not halves.has_canonical_format
    assert np.allclose(P.row_cosines(seeds, [0, 1, 2], halves, [0, 1]), twice[:, :2],
                       atol=1e-6)
    # dense vectors (the semantic extra's) take scipy's and numpy's own product
    dense = P.row_cosines(seeds.toarray(), [0, 2], paper_vectors.toarray(), [1, 3, 5])
    assert np.allclose(dense, (seeds[[0, 2]] @ paper_vectors[[1, 3, 5]].T).toarray(), atol=1e-6)


def test_scores_at_a_few_papers_are_the_rows_of_blocks_there(papers):
    """A digest without recommendations needs its matches' scores only (DayScores.at): the
    same scores as the whole row, and the same "similar to" seeds, for profiles with
    negatives, a seed both liked and disliked, a seed twice, and with the cosines kept or
    not; dense vectors (the semantic space) too."""
    from scipy import sparse

    from digestd.relevance.day import DayScores, ProfileSeeds

    rng = np.random.default_rng(11)
    day_papers, pool = papers[:80], papers[80:]
    profiles = {k: ProfileSeeds(tuple(pool[j] for j in rng.choice(len(pool), 1 + k % 7,
                                                                 replace=False)),
                                (day_papers[k % 5], pool[k]) if k % 3 == 0 else ())
                for k in range(30)}
    profiles[30] = ProfileSeeds((pool[0], pool[1], pool[0]), (pool[1],))
    day = DayScores.build(day_papers, profiles)
    # TfidfVectorizer leaves a row's terms unsorted; sorted, SciPy calls the rows canonical
    # and row_cosines lays the papers out by assignment, not np.add.at
    assert day.paper_vectors.has_canonical_format and day.seed_vectors.has_canonical_format
    rows = {k: b for keys, block in day.blocks(chunk=7) for k, b in zip(keys, block)}
    wanted = {k: sorted(rng.choice(len(day_papers), 1 + k % 17, replace=False).tolist())
              for k in profiles}
    for cosines_kept in (True, False):
        if not cosines_kept:
            day.cosines = None
        for k, cols in wanted.items():
            scores, nearest = day.at(k, cols)
            np.testing.assert_allclose(scores, rows[k][cols], rtol=1e-5, atol=1e-6)
            assert nearest == day.nearest_positives(k, cols)
    # some profiles' whole rows (those who want recommendations), without the kept cosines
    fresh = DayScores.build(day_papers, profiles)
    some = {k: b for keys, block in fresh.blocks(keys=[3, 30, 12], chunk=2)
            for k, b in zip(keys, block)}
    assert list(some) == [3, 30, 12] and fresh.cosines is None
    for k, row in some.items():
        np.testing.assert_allclose(row, rows[k], rtol=1e-5, atol=1e-6)
    dense = DayScores(day.papers, day.keys, None, day.paper_vectors.toarray(),
                      day.seed_vectors.toarray(), day.seed_titles, day.positives,
                      day.negatives)
    for k, cols in wanted.items():
        scores, nearest = dense.at(k, cols)
        np.testing.assert_allclose(scores, rows[k][cols], rtol=1e-5, atol=1e-6)
        assert nearest == day.nearest_positives(k, cols)
    scores, nearest = day.at(30, [])
    assert scores.shape == (0,) and nearest == []
    assert not sparse.issparse(dense.seed_vectors)


def test_a_seed_file_nothing_of_which_reads_is_said_so_briefly(tmp_path, capsys):
    """A file that is no seed format (a page of text, say) gets the first 20 lines it could
    not read, how many more, and what formats work; not one line per line of the file."""
    from digestd.cli import main

    from .conftest import init_offline

    init_offline(tmp_path)
    cfg = ["--config", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    page = tmp_path / "page.txt"
    page.write_text("\n".join(f"Some line {i} of a web page about papers" for i in range(60)))
    capsys.readouterr()
    assert main([*cfg, "subscribers", "seed", "a@example.org", "--file", str(page)]) == 1
    out, err = capsys.readouterr()
    assert err.count("not an arXiv id, DOI or URL") == 20 and "... and 40 more not read" in err
    assert "kept 0 of 60 seeds" in out and "nothing in it could be read" in out
    assert "BibTeX, RIS" in out
    # the same file for `similar`: the same 20 lines, not 60 on one line
    assert main([*cfg, "similar", "--seeds", str(page)]) == 1
    err = capsys.readouterr().err
    assert err.count("not an arXiv id, DOI or URL") == 20 and "... and 40 more not read" in err
    assert max(map(len, err.splitlines())) < 300
    # a file that is not there: a usage error
    assert main([*cfg, "subscribers", "seed", "a@example.org", "--file",
                 str(tmp_path / "missing.bib")]) == 2
    assert "cannot read" in capsys.readouterr().err
    # an empty export is no success either
    for empty in ("empty.bib", "empty.json", "empty.txt"):
        (tmp_path / empty).write_text("[]" if empty.endswith(".json") else "")
        assert main([*cfg, "subscribers", "seed", "a@example.org", "--file",
                     str(tmp_path / empty)]) == 1
        assert "the file holds no paper (an empty export, or the wrong file?)" in \
            capsys.readouterr().out
