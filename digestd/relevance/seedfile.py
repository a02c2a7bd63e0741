"""Seed papers from the files readers have: BibTeX (Zotero, Mendeley, Google Scholar), RIS,
a JSON array of papers (as `digestd rules test --papers` takes), or a list of arXiv ids, URLs
and DOIs. Every entry becomes a Seed or a problem line: nothing is dropped silently."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DigestdError, UsageError
from ..sources.clean import clean_abstract, clean_title
from ..sources.ids import arxiv_id, canonical, doi_id, url_id

FORMATS = ("bibtex", "ris", "json", "ids")


@dataclass(frozen=True)
class Seed:
    """One seed paper as a file gave it.

    `id`: the canonical store id (`arxiv:2401.01234`, `doi:10.1145/...`, `url:...`), or ""
    when the entry names none (kept by its title and abstract); `ids`: every id found, the
    canonical one first. `title`/`abstract`: plain text ("" for a bare id, until resolved).
    `where`: "file:line" or "file:line key" of the entry, for messages."""

    id: str
    title: str = ""
    abstract: str = ""
    ids: tuple[str, ...] = ()
    where: str = ""


@dataclass(frozen=True)
class SeedFile:
    """What a seed file held: the seeds in file order and one message per entry that gave
    none ("zotero.bib:40: @misc block not parsed: ...")."""

    seeds: tuple[Seed, ...]
    problems: tuple[str, ...] = ()


def sniff(path: str | Path, text: str) -> str:
    """The format of a seed file: by extension (.bib, .ris, .json, .txt), else by content."""
    ext = Path(path).suffix.lower()
    by_ext = {".bib": "bibtex", ".bibtex": "bibtex", ".ris": "ris", ".json": "json",
              ".txt": "ids", ".list": "ids"}
    if ext in by_ext:
        return by_ext[ext]
    head = text.lstrip()
    if head.startswith("["):
        return "json"
    if re.search(r"^\s*@\w+\s*[{(]", text, re.MULTILINE):
        return "bibtex"
    if re.search(r"^TY  - ", text, re.MULTILINE):
        return "ris"
    return "ids"


def read_seeds(path: str | Path, fmt: str | None = None) -> SeedFile:
    """Read a seed file (`fmt`: one of FORMATS, else sniffed). Raises DigestdError when the
    file cannot be read or is not of its format at all (e.g. JSON that is not an array)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:  # the file named is not there: a usage error (exit status 2)
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    return seeds_from_bytes(data, str(path), fmt)


def seeds_from_bytes(data: bytes, name: str, fmt: str | None = None) -> SeedFile:
    """Seeds from the bytes of a file named `name` (a path, or an upload's file name: its
    extension picks the format unless `fmt` does). Raises DigestdError as read_seeds does."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DigestdError(f"{name}: not UTF-8 text") from None
    return parse_seeds(text, fmt or sniff(name, text), name=name)


def parse_seeds(text: str, fmt: str, *, name: str = "<seeds>") -> SeedFile:
    """Seeds from the text of a file of format `fmt` (FORMATS); `name` prefixes messages."""
    if fmt == "bibtex":
        return _bibtex(text, name)
    if fmt == "ris":
        return _ris(text, name)
    if fmt == "json":
        return _json(text, name)
    if fmt == "ids":
        return _ids(text, name)
    raise DigestdError(f"unknown seed file format {fmt!r}: one of {', '.join(FORMATS)}")


def id_of(text: str) -> str | None:
    """The store id named by one arXiv id or URL, DOI or doi.org URL, or other http(s) URL."""
    text = text.strip().strip("<>")
    if not text:
        return None
    if re.match(r"https?://", text, re.IGNORECASE):
        return url_id(text)
    return arxiv_id(text) or doi_id(text)


def _ids_in(fields: Mapping[str, object], *, arxiv_fields: Iterable[str],
            doi_fields: Iterable[str], url_fields: Iterable[str]) -> tuple[str, ...]:
    def values(key: str) -> list[str]:
        v = fields.get(key)
        items = v if isinstance(v, list) else [v]
        return [x for x in items if isinstance(x, str) and x.strip()]

    found: list[str | None] = []
    for key in arxiv_fields:  # "arXiv:2106.09685 [cs]", "arXiv preprint arXiv:2106.09685"
        found += [arxiv_id(v) for v in values(key)]
    for key in doi_fields:
        found += [doi_id(v) for v in values(key)]
    for key in url_fields:
        found += [url_id(v) for v in values(key) if re.match(r"https?://", v.strip(), re.IGNORECASE)]
    picked = canonical(*found)
    return (picked[0], *picked[1]) if picked else ()


def unknown_ids(ids: Sequence[str]) -> str:
    """'2 unknown ids: arxiv:..., doi:...' (or '1 unknown id: ...'), as every seed report
    says it; "" for none."""
    n = len(ids)
    return f"{n} unknown id{'s' if n != 1 else ''}: {', '.join(ids)}" if n else ""


def _keep(seed: Seed | None, where: str, seeds: list[Seed], problems: list[str]) -> None:
    """A parsed entry: kept as a seed, or reported when it names nothing usable."""
    if seed is None:
        problems.append(f"{where}: no title and no arXiv id, DOI or URL")
    else:
        seeds.append(seed)


def _seed(ids: tuple[str, ...], title: object, abstract: object, where: str,
          tex: bool) -> Seed | None:
    t = clean_title(title, tex=tex) if isinstance(title, str) else ""
    a = clean_abstract(abstract, tex=tex) if isinstance(abstract, str) else ""
    if not ids and not t:
        return None
    return Seed(id=ids[0] if ids else "", title=t, abstract=a, ids=ids, where=where)


def _bibtex(text: str, name: str) -> SeedFile:
    import bibtexparser  # v2 API: parse_string, Library.entries / failed_blocks

    log = logging.getLogger("bibtexparser")
    level = log.level
    log.setLevel(logging.CRITICAL)  # its parse errors come back as failed blocks, reported
    try:
        lib = bibtexparser.parse_string(text)
    finally:
        log.setLevel(level)
    seeds, problems = [], []
    for block in lib.blocks:
        line = getattr(block, "start_line", 0) + 1
        if type(block).__name__ in ("ParsingFailedBlock", "DuplicateBlockKeyBlock",
                                    "DuplicateFieldKeyBlock", "MiddlewareErrorBlock"):
            raw = (getattr(block, "raw", "") or "").strip().splitlines()
            what = raw[0][:60] if raw else "a block"
            err = (str(getattr(block, "error", "") or "").strip().splitlines() or [""])[0]
            problems.append(f"{name}:{line}: not parsed: {what}" + (f" ({err})" if err else ""))
            continue
        if not hasattr(block, "entry_type"):
            continue  # @string, @preamble, @comment, text between entries
        fields = {k.lower(): f.value for k, f in block.fields_dict.items()}
        prefix = str(fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv")
        eprint_fields = ["eprint"] if prefix.lower() == "arxiv" else []
        ids = _ids_in(fields, arxiv_fields=[*eprint_fields, "arxivid", "arxiv", "note",
                                            "journal", "howpublished", "url", "doi"],
                      doi_fields=["doi"], url_fields=["url"])
        where = f"{name}:{line} {block.key}"
        _keep(_seed(ids, fields.get("title"), fields.get("abstract"), where, tex=True), where,
              seeds, problems)
    return SeedFile(tuple(seeds), tuple(problems))


def _ris(text: str, name: str) -> SeedFile:
    import rispy

    seeds, problems = [], []
    # rispy skips what it cannot read between records; count the records ourselves so a
    # record it lost is reported (TY starts one, ER ends it)
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("TY  -")]
    try:
        records = rispy.loads(text, skip_unknown_tags=False)
    except (OSError, ValueError, KeyError, TypeError) as e:  # what rispy raises on garbage
        raise DigestdError(f"{name}: not a RIS file: {e}") from None
    for i, rec in enumerate(records):
        line = starts[i] if i < len(starts) else 0
        ids = _ids_in(rec, arxiv_fields=["urls", "notes", "note", "journal_name",
                                          "secondary_title", "doi", "custom1"],
                      doi_fields=["doi"], url_fields=["urls"])
        title = rec.get("title") or rec.get("primary_title") or ""
        where = f"{name}:{line}"
        _keep(_seed(ids, title, rec.get("abstract") or rec.get("notes_abstract"), where,
                    tex=False), where, seeds, problems)
    if len(starts) > len(records):
        problems.append(f"{name}: {len(starts) - len(records)} records not parsed")
    return SeedFile(tuple(seeds), tuple(problems))


def _json(text: str, name: str) -> SeedFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DigestdError(f"{name}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise DigestdError(f"{name}: expected a JSON array of paper objects")
    seeds, problems = [], []
    for i, rec in enumerate(data):
        where = f"{name}: item {i}"
        if isinstance(rec, str):  # ["2401.01234", "10.1145/..."] is a list of ids too
            found = id_of(rec)
            if found:
                seeds.append(Seed(id=found, ids=(found,), where=where))
            else:
                problems.append(f"{where}: not an arXiv id, DOI or URL: {rec[:80]}")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{where}: not a paper object")
            continue
        raw = [rec.get("id"), *(rec.get("ids") or []), rec.get("doi"), rec.get("url")]
        ids = canonical(*(id_of(x) for x in raw if isinstance(x, str)))
        ids_t = (ids[0], *ids[1]) if ids else ()
        _keep(_seed(ids_t, rec.get("title"), rec.get("abstract"), where, tex=False), where,
              seeds, problems)
    return SeedFile(tuple(seeds), tuple(problems))


def _ids(text: str, name: str) -> SeedFile:
    seeds, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip() if not line.lstrip().startswith("http") else (
            line.strip())
        if not item:
            continue
        found = id_of(item)
        if found:
            seeds.append(Seed(id=found, ids=(found,), where=f"{name}:{n}"))
        else:
            problems.append(f"{name}:{n}: not an arXiv id, DOI or URL: {item[:80]}")
    return SeedFile(tuple(seeds), tuple(problems))


def resolve(seeds: Iterable[Seed], known: Mapping[str, object]) -> tuple[list[Seed], list[Seed]]:
    """(usable, unknown): a seed with a title is usable as it is (its text came with it);
    a bare id is filled in from `known` (id or alias -> an object with title and abstract,
    e.g. a models.Paper from the store or a papers file), else it is unknown.
    Duplicates (the same id twice) are kept once."""
    usable, unknown, seen = [], [], set()
    for s in seeds:
        key = s.id or f"title:{s.title.lower()}"
        if key in seen:
            continue
        seen.add(key)
        if s.title:
            usable.append(s)
            continue
        hit = next((known[i] for i in s.ids if i in known), None)
        if hit is None:
            unknown.append(s)
        else:
            usable.append(Seed(id=s.id, title=getattr(hit, "title", ""),
                               abstract=getattr(hit, "abstract", ""), ids=s.ids,
                               where=s.where))
    return usable, unknown
