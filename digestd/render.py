"""Render digests: the Jinja environment, the text and HTML bodies, each digest's message and
its headers. The MIME assembly, encodings and DKIM are in mime.py (re-exported here).
"""

from __future__ import annotations

import functools
import heapq
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import jinja2
import jinja2.ext
import jinja2.meta
from markupsafe import Markup, escape

from .errors import ConfigError
from .mime import (
    DkimSigner,
    address_domain,
    address_header,
    ascii_html,
    build_alternative,
    check_address,
    date_header,
    encode_text,
    lf_bytes,
    one_line,
    safe_token,
    sender_id,
)
from .models import Digest, Paper, PaperMatch, quote_rule
from .text import words
from .tokens import (
    digest_value,
    feedback_value,
    plus_address,
    sign,
    sign_short,
    subscriber_value,
    unsubscribe_mail_token,
)

ABSTRACT_CHARS = 300
WHY_CHARS = 200  # the email's "matched:" line at most (a digest's page shows all of it)
TEXT_WIDTH = 78  # the plain-text part wraps here (RFC 5322 2.1.1 recommends 78)


def bundled_templates() -> Path:
    """The templates shipped with the package (top-level templates/ in a source checkout)."""
    try:
        installed = resources.files("digestd.templates")
        if installed.joinpath("email").is_dir():
            return Path(str(installed))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "templates"


# the templates a digest is rendered with (Renderer); the web app's are those of web/
EMAIL_TEMPLATES = ("email/digest.txt", "email/digest.html", "email/empty.txt",
                   "email/empty.html", "email/paper.txt", "email/paper.html")
_TEMPLATE_SUFFIXES = (".txt", ".html", ".htm", ".xml")


def template_error(e: jinja2.TemplateSyntaxError) -> ConfigError:
    """A template that does not compile, as a config mistake: `FILE:LINE: message`, the
    file being the template (one of digest.templates_dir: the bundled ones compile)."""
    return ConfigError(f"{e.message} (a template of digest.templates_dir: fix it, or remove "
                       "the file to use the bundled one)", path=e.filename or e.name,
                       line=e.lineno, key="templates_dir")


def check_templates(templates_dir: str, *, web: bool = True) -> None:
    """Compile every template of `templates_dir` that digests (and with `web`, the web
    app's pages and mails) are rendered with, and those they include, import or extend.

    Raises ConfigError `FILE:LINE: message` for a syntax error (all of them, one a line),
    or for a template that names one found nowhere. The bundled templates are not
    compiled (their tests do): without a templates_dir this costs nothing."""
    if not templates_dir:
        return
    env = environment(templates_dir)
    bundled = bundled_templates()
    names = list(EMAIL_TEMPLATES)
    if web:
        names += sorted(str(p.relative_to(bundled)) for p in (bundled / "web").iterdir()
                        if p.suffix in _TEMPLATE_SUFFIXES)
    own = str(Path(templates_dir).resolve())
    errors: list[ConfigError] = []
    seen: set[str] = set()
    while names:
        name = names.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            source, filename, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            continue  # named by one of templates_dir (said where it is named, below)
        if not str(Path(filename).resolve()).startswith(own + "/"):
            continue
        try:
            env.compile(source, name, filename)
        except jinja2.TemplateSyntaxError as e:
            errors.append(template_error(e))
            continue
        lines = source.splitlines()
        for found in jinja2.meta.find_referenced_templates(env.parse(source, name, filename)):
            if found is None:  # a name made at render time
                continue
            try:
                env.loader.get_source(env, found)
            except jinja2.TemplateNotFound:
                line = next((n for n, text in enumerate(lines, 1) if found in text), None)
                errors.append(ConfigError(
                    f'names the template "{found}", which is neither in '
                    f"digest.templates_dir ({own}) nor bundled with digestd",
                    path=filename, line=line, key="templates_dir"))
                continue
            names.append(found)
    if len(errors) > 1:
        first = errors[0]
        combined = ConfigError(first.message, path=first.path, line=first.line,
                               key=first.key)
        combined.args = ("\n".join(str(e) for e in errors)
                         + f"\n({len(errors)} mistakes in the templates)",)
        raise combined
    if errors:
        raise errors[0]


def environment(templates_dir: str = "") -> jinja2.Environment:
    """Autoescaping Jinja environment; files in `templates_dir` override bundled ones by name."""
    loaders = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(str(bundled_templates())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"),
                                            default_for_string=True),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["shorten"] = shorten
    env.filters["wrap"] = wrap
    env.add_extension(InlineStyles)
    return env


class InlineStyles(jinja2.ext.Extension):
    """Writes the styles into the template source before it compiles: `{{ css.name }}`
    becomes the text of the rule `.name` of digest.css, so no message pays for it."""

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        environment.extend(inline_css={})

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        css = self.environment.inline_css  # type: ignore[attr-defined]
        if not (name or "").endswith((".html", ".htm")):
            return source
        # a class the stylesheet does not define gets no style rather than an error
        return _CSS_REF.sub(lambda m: css.get(m[1] or m[2], ""), source)


_CSS_REF = re.compile(r"\{\{-?\s*css(?:\.([A-Za-z0-9_]+)|\[['\"]([A-Za-z0-9_-]+)['\"]\])\s*-?\}\}")


def inline_styles(css: str) -> dict[str, Markup]:
    """`.name { decl; decl }` rules -> {"name": "decl;decl"}, for style="..." attributes."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out: dict[str, Markup] = {}
    for name, body in re.findall(r"\.([A-Za-z0-9_-]+)\s*\{([^}]*)\}", css):
        decls = [re.sub(r"\s+", " ", d).strip() for d in body.split(";")]
        # a quote would end the attribute: the file is the operator's, but stay well-formed
        text = ";".join(d.replace(": ", ":") for d in decls if d).replace('"', "'")
        out[name] = Markup(text)
    return out


def shorten(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """Cut at a word boundary near `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:.") + "…"


@functools.lru_cache(maxsize=8192)  # a paper goes to many subscribers in one run
def wrap(text: str, width: int = 74, indent: str = "") -> str:
    """Greedy word wrap at `width`; lines after the first get `indent`. One C-level regex
    pass (textwrap costs 20 times more); a word longer than a line keeps its own line."""
    rx = _WRAPS.get(width)
    if rx is None:
        rx = _WRAPS[width] = re.compile(rf"(\S.{{0,{width - 1}}})(?: |$)|(\S+)(?: |$)")
    lines = [a or b for a, b in rx.findall(" ".join(text.split()))]
    return ("\n" + indent).join(lines)


_WRAPS: dict[int, re.Pattern] = {}


def short_authors(authors: tuple[str, ...], shown: int = 3) -> str:
    """'A, B, C and 4 others' style."""
    if not authors:
        return ""
    if len(authors) <= shown + 1:
        return ", ".join(authors[:-1]) + (" and " if len(authors) > 1 else "") + authors[-1]
    return f"{', '.join(authors[:shown])} and {len(authors) - shown} others"


def by_relevance(items: tuple[PaperMatch, ...] | list[PaperMatch],
                 limit: int | None = None) -> list[PaperMatch]:
    """Best first: rules matched, title hits, upvotes; ties go to the newer paper (by date,
    then by the later published time, then the higher id). With `limit`, only that many
    (a heap: a broad rule can match hundreds of papers)."""
    # newest first, then a stable sort by relevance keeps that order among equals
    newest = sorted(items, key=_newest, reverse=True)
    if limit is not None and limit < len(items):
        return heapq.nsmallest(limit, newest, key=relevance)  # stable, like sorted()
    newest.sort(key=relevance)
    return newest


def relevance(item: PaperMatch) -> tuple:
    """Sort key of `by_relevance` (ties are put newest first before it applies)."""
    title_hits = 0
    for r in item.rules:
        for h in r.hits:
            if h.field == "title":
                title_hits += 1
    p = item.paper
    return (-len(item.rules), -title_hits, -(p.upvotes or 0), -_day(p.published))


def _newest(item: PaperMatch) -> tuple[str, str]:
    return (item.paper.published or "", item.paper.id)


@functools.lru_cache(maxsize=1024)  # a run's papers share a few dates
def _day(published: str | None) -> int:
    """2026-11-23... -> 20261123; unknown -> 0, which sorts as the oldest."""
    d = published or ""
    if len(d) >= 10 and d[4] == "-" and d[7] == "-" and (d[:4] + d[5:7] + d[8:10]).isdigit():
        return int(d[:4] + d[5:7] + d[8:10])
    return 0


@dataclass(frozen=True)
class Links:
    """The signed links of a subscriber, on the web app's URL shapes: /u/TOKEN (unsubscribe),
    /p/TOKEN (preferences), /f/TOKEN.atom (the feed), /d/TOKEN (a digest's page),
    /r/TOKEN/N/more, /less and /a/K (feedback on the N-th paper of a digest, following its
    K-th author).

    `generation` is the subscriber's link generation ("reset my links" raises it).
    `archive_url`, when set, replaces /d/TOKEN: an external archive's URL with {token}
    (signed, naming the subscriber and the digest) and {period} filled in."""

    base_url: str
    secret: bytes
    archive_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}"

    def unsubscribe(self, subscriber_id: int, generation: int = 0) -> str:
        return self.url(f"/u/{self.unsubscribe_token(subscriber_id, generation)}")

    def preferences(self, subscriber_id: int, generation: int = 0) -> str:
        return self.url(f"/p/{self.preferences_token(subscriber_id, generation)}")

    def feed(self, subscriber_id: int, generation: int = 0) -> str:
        token = sign(self.secret, "feed", subscriber_value(subscriber_id, generation))
        return self.url(f"/f/{token}.atom")

    def unsubscribe_token(self, subscriber_id: int, generation: int = 0) -> str:
        return sign(self.secret, "unsub", subscriber_value(subscriber_id, generation))

    def preferences_token(self, subscriber_id: int, generation: int = 0) -> str:
        return sign(self.secret, "prefs", subscriber_value(subscriber_id, generation))

    def digest(self, subscriber_id: int, period: str, generation: int = 0) -> str:
        """The page of one digest: all its papers. Never expires; it works as long as the
        digest is kept (until the subscriber is deleted) and the subscriber's links are not
        reset (`generation`: Subscriber.link_gen)."""
        token = sign(self.secret, "digest", digest_value(subscriber_id, period, generation))
        if self.archive_url:
            return self.archive_url.replace("{token}", token).replace("{period}", quote(period))
        return self.url(f"/d/{token}")

    def feedback(self, subscriber_id: int, generation: int, period: str) -> str:
        """/r/TOKEN: what the feedback links of one digest start with; the paper's place
        (1-based, the digest's order) and the action follow ("/3/more"). One short token per
        digest, signed with the link generation, so "reset my links" retires them."""
        token = sign_short(self.secret, "feedback",
                           feedback_value(subscriber_id, generation, period))
        return self.url(f"/r/{token}")


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper as the templates see it: display-ready strings (attributes, not dict keys,
    because Jinja tries attribute access first)."""

    title: str
    url: str
    pdf_url: str
    authors: str
    source: str
    categories: str
    published: str
    upvotes: int | None
    abstract: str


_FIELD_NAMES = {"author": "authors", "category": "categories"}
_RULE_TERM = re.compile(r'"[^"]*"|[^\s()"]+')


@functools.lru_cache(maxsize=4096)  # subscribers share rules and a run's hits repeat
def _as_written(found: str, rule: str) -> str:
    """A hit's term as the rule wrote it ("3D" for the hit 3d, "Noisy Labels" for the
    phrase "noisy labels"); a prefix's hit stays the word that was found ("pruning")."""
    bare = found.strip('"')
    want = words(bare)
    for token in _RULE_TERM.findall(rule):
        term = token.lstrip("-")
        if not term.startswith('"') and ":" in term:
            term = term.split(":", 1)[1]
        term = term.strip('"')
        if term and not term.endswith("*") and words(term) == want:
            return term
    return bare


def why_text(item: PaperMatch) -> str:
    """Why a paper matched, as a reader says it: '"noisy labels" in title and abstract ·
    "pruning" in abstract' (each term as the rule wrote it, with the fields it was found
    in; terms of all the subscriber's rules that matched, in rule order)."""
    rules = item.rules
    return _why_rules(rules if isinstance(rules, tuple) else tuple(rules))


@functools.lru_cache(maxsize=65536)  # readers share rules, and each paper's hits repeat in
# the digests of all who have its rules: a day's build says most of its whys many times
def _why_rules(rules: tuple) -> str:
    """why_text of a match's rules (RuleMatch, hashable)."""
    parts: list[str] = []
    for r in rules:
        if not r.hits:
            parts.append(f"rule {quote_rule(r.rule)}")
            continue
        fields: dict[str, list[str]] = {}
        for h in r.hits:
            fields.setdefault(h.text, []).append(_FIELD_NAMES.get(h.field, h.field))
        for found, names in fields.items():
            names = list(dict.fromkeys(names))
            where = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            parts.append(f'"{_as_written(found, r.rule)}" in {where}')
    return " · ".join(dict.fromkeys(parts))


class Block:
    """One paper rendered once per run by paper.txt or paper.html, cut where each digest's
    values go: `number` (the paper's place in the digest) and `why` (the rules' hits)."""

    __slots__ = ("holes", "parts", "wire")

    def __init__(self, rendered: str, marks: re.Pattern) -> None:
        if "\r" in rendered:  # line ends as a message has them (a CR in a paper's data)
            rendered = rendered.replace("\r\n", "\n").replace("\r", "\n")
        # text, slot name, text, slot name, ..., text: the names are the holes to fill
        self.parts = marks.split(rendered)
        self.holes = tuple((i, self.parts[i]) for i in range(1, len(self.parts), 2))
        # the texts as a message carries them (mime.lf_bytes): a message is put together
        # from these bytes, so a paper is encoded once per run, not once per digest
        self.wire = [lf_bytes(part) if i % 2 == 0 else b"" for i, part in
                     enumerate(self.parts)]

    def fill(self, values: dict[str, str]) -> str:
        parts = self.parts.copy()
        for i, slot in self.holes:
            parts[i] = values[slot]
        return "".join(parts)

    def fill_into(self, values: dict[str, bytes], out: list[bytes]) -> None:
        """Append the block's bytes with `values` (lf_bytes) in its holes to `out`."""
        wire = self.wire
        out.append(wire[0])
        for i, slot in self.holes:
            out.append(values[slot])
            out.append(wire[i + 1])


def _why_lines(why: str, label: str = "matched") -> str:
    """The text part's "   matched: WHY" line, wrapped at TEXT_WIDTH with a hanging indent:
    `why` as it follows "LABEL: " (the template prints the label)."""
    head = f"{label}: "
    if len(why) <= TEXT_WIDTH - 3 - len(head) and "  " not in why and "\n" not in why:
        return why  # the common case: it fits
    lines = wrap(head + why, TEXT_WIDTH - 3, "   ")
    # a first word too long to follow the label starts on the next line
    return lines[len(head):] if lines.startswith(head) else lines[len(head) - 1:]


@functools.lru_cache(maxsize=65536)  # a paper's hits repeat in every digest of its readers
def _why_both(why: str, label: str) -> tuple[str, str]:
    """A "matched:" line's `why` for the text part (cut at WHY_CHARS and wrapped) and for
    the HTML part (cut, escaped, ASCII)."""
    why = shorten(why, WHY_CHARS)
    return _why_lines(why, label), ascii_html(escape(why))


@functools.lru_cache(maxsize=65536)
def _why_wire(why: str, label: str) -> tuple[bytes, bytes] | None:
    """_why_both as a message's bytes (mime.lf_bytes); None for a why with a CR."""
    text, html = _why_both(why, label)
    if "\r" in text or "\r" in html:
        return None
    return text.encode("utf-8"), html.encode("ascii")


_LISTS = ("items", "recommended")  # the frames' lists of papers, rendered apart
# what lets a template do more with a variable than print it: a block whose output is
# filtered or captured, an include or a parent that sees the context, macros, autoescape
_OPAQUE = (jinja2.nodes.FilterBlock, jinja2.nodes.AssignBlock, jinja2.nodes.Macro,
           jinja2.nodes.CallBlock, jinja2.nodes.Include, jinja2.nodes.Extends,
           jinja2.nodes.Import, jinja2.nodes.FromImport, jinja2.nodes.EvalContextModifier)


def _printed_only(env: jinja2.Environment, name: str, variables: tuple[str, ...]) -> bool:
    """Whether the template `name` uses each of `variables` only as a bare {{ variable }}
    (no filter, test, condition, assignment or loop), so its output holds each printed
    value as it was given: a mark printed in its place can be replaced by the value's bytes
    afterwards. False for a template with a construct that could change or capture the
    output of such a print (_OPAQUE)."""
    source, _, _ = env.loader.get_source(env, name)
    tree = env.parse(source)
    if any(True for _ in tree.find_all(_OPAQUE)):
        return False
    uses = sum(1 for n in tree.find_all(jinja2.nodes.Name) if n.name in variables)
    printed = sum(1 for out in tree.find_all(jinja2.nodes.Output) for n in out.nodes
                  if isinstance(n, jinja2.nodes.Name) and n.name in variables)
    return uses == printed


def _paper_fields(p: Paper) -> tuple:
    return (p.title, p.url, p.pdf_url, short_authors(p.authors), p.source,
            ", ".join(p.categories), (p.published or "")[:10], p.upvotes, shorten(p.abstract))


_FEEDBACK_LABEL = "More or less like this:"
# what goes before the URL of a feedback line: the label and a space, or the label, a line
# end and the indent (the URL on a line of its own); and the same as a message's bytes
_FEEDBACK_HEADS = (f"{_FEEDBACK_LABEL} ", f"{_FEEDBACK_LABEL}\n   ")
_FEEDBACK_HEADS_WIRE = tuple(head.encode("ascii") for head in _FEEDBACK_HEADS)


def _feedback_wraps(url_chars: int) -> int:
    """1 when a feedback URL of `url_chars` characters does not fit after the label and the
    indent in TEXT_WIDTH (it goes on a line of its own), else 0: an index of
    _FEEDBACK_HEADS."""
    return int(len(_FEEDBACK_LABEL) + 4 + url_chars > TEXT_WIDTH)


def _feedback_lines(url: str) -> str:
    """The text part's "   More or less like this: URL" line (the URL on a line of its own
    when both do not fit in TEXT_WIDTH), as it follows the indent."""
    return _FEEDBACK_HEADS[_feedback_wraps(len(url))] + url


def _title_width(number: int) -> int:
    """Where the text part wraps the title of paper `number`: "N. " or "NN. " and 74
    columns; 1 column less for each digit more, so the first line and its continuation
    lines, indented under the title's first character, stay within TEXT_WIDTH."""
    return TEXT_WIDTH - 2 - max(2, len(str(number)))


def _title_indent(digits: int) -> str:
    """The continuation indent of a title after a number of `digits` digits: as wide as
    "N. ", so its lines start under the title's first character."""
    return " " * (digits + 2)


def period_label(period: str) -> str:
    """'2026-11-23', 'week 2026-W48', or the date of a forced digest's timestamp."""
    if re.fullmatch(r"\d{4}-W\d{2}", period):
        return f"week {period}"
    return period[:10] if re.match(r"\d{4}-\d{2}-\d{2}T", period) else period


class Renderer:
    """Renders digests to message bytes. Build one per run: templates and styles load once."""

    def __init__(self, *, links: Links, from_addr: str, max_papers: int = 25,
                 templates_dir: str = "", reply_to: str = "", feedback_id: str = "",
                 unsubscribe_mailto: str = "", return_path: str = "",
                 dkim: DkimSigner | None = None) -> None:
        """`return_path` set (mail that comes back is read, see digestd.inbound): the
        mailto: of List-Unsubscribe is `LOCAL+TOKEN@DOMAIN` of `unsubscribe_mailto` (empty:
        unsubscribe@ the From domain), TOKEN naming the subscriber. Raises ConfigError
        (template_error) when a template of `templates_dir` does not compile."""
        # The text part goes out as UTF-8 8bit (RFC 6152), which costs nothing to encode;
        # deliver/ converts it for the rare server without 8BITMIME. A signed message
        # must not change on the way, so with DKIM it is quoted-printable from the start.
        self.eight_bit = dkim is None
        self.env = environment(templates_dir)
        source, _, _ = self.env.loader.get_source(self.env, "email/digest.css")
        self.css = inline_styles(source)
        self.env.inline_css.update(self.css)  # type: ignore[attr-defined]
        try:
            # a due digest without papers gets empty.*, for subscribers who want to hear
            # about empty days
            (self.text_template, self.html_template, self.empty_text, self.empty_html,
             self.paper_text, self.paper_html) = map(self.env.get_template, EMAIL_TEMPLATES)
        except jinja2.TemplateSyntaxError as e:
            # no digest could be built: said as `config check` says it, not a traceback
            raise template_error(e) from None
        # the frames' globals (the environment's: loaded templates add none), copied once
        # for _render
        self._globals = dict(self.text_template.globals)
        # paper -> its (text, html) blocks: in a run a paper is in many subscribers' digests,
        # so it is rendered once with placeholders that each digest fills in
        self.blocks: dict[str, tuple[Block, Block]] = {}
        # (paper, digits) -> its text block for numbers of 2 digits and more: a title's
        # continuation lines are indented as wide as "NN. " (_title_indent), and from 3
        # digits on it wraps shorter (_title_width)
        self.numbered: dict[tuple[str, int], Block] = {}
        tag = secrets.token_hex(6)
        slots = ("number", "label", "why", "fb", "feedback")
        self._marks = {slot: f"\x00{tag}:{slot}\x00" for slot in slots}
        self._mark_rx = re.compile(f"\x00{tag}:({'|'.join(slots)})\x00")
        # where the frames print the lists of papers (_wire_bodies)
        self._slot_marks = {name: f"\x00{tag}:{name}\x00" for name in _LISTS}
        self._slot_rx = re.compile(f"\x00{tag}:({'|'.join(_LISTS)})\x00")
        self._splice = all(_printed_only(self.env, name, _LISTS)
                           for name in ("email/digest.txt", "email/digest.html"))
        self.links = links
        self.max_papers = max_papers
        self.dkim = dkim
        name, address = parseaddr(from_addr)
        self.envelope_from = address
        self.domain = address_domain(address)
        self.list_name = one_line(name) or "Paper digest"
        self.from_header = address_header(name, address)
        self.reply_to_header = address_header(*parseaddr(reply_to)) if reply_to else ""
        self.mailto = parseaddr(unsubscribe_mailto)[1] if unsubscribe_mailto else address
        self.mailto_tokens = bool(return_path)
        if return_path and not unsubscribe_mailto:
            self.mailto = f"unsubscribe@{self.domain}"
        check_address(self.mailto)
        self.feedback_id = one_line(feedback_id) or sender_id(self.domain)
        self.list_id = encode_text(f"{self.list_name} <digest.{self.domain}>")

    def context(self, digest: Digest) -> dict:
        """The variables of digest.txt/.html (and empty.txt/.html); `items` are the papers
        shown, rendered by paper.txt and paper.html, in (text, html) order."""
        ctx, numbered, recs, fb, fb_html = self._frame_context(digest)
        return self._with_lists(ctx, numbered, recs, fb, fb_html)

    def _with_lists(self, ctx: dict, numbered: list, recs: list, fb: str, fb_html: str) -> dict:
        """`ctx` (of _frame_context) with `items` and `recommended` as text and HTML."""
        texts, htmls = self._fill(numbered, "matched", fb, fb_html)
        rec_texts, rec_htmls = self._fill(recs, "recommended", fb, fb_html)
        ctx["items"] = ("".join(texts), Markup("".join(htmls)))
        ctx["recommended"] = ("".join(rec_texts), Markup("".join(rec_htmls)))
        return ctx

    def _frame_context(self, digest: Digest) -> tuple[dict, list, list, str, str]:
        """(context() without `items` and `recommended`; the (number, paper, why) of the
        papers shown and of the recommended ones; the digest's feedback link, and it in
        HTML)."""
        shown = (digest.items[:self.max_papers] if digest.ordered
                 else by_relevance(digest.items, self.max_papers))
        sub = digest.subscriber
        more = len(digest.items) - len(shown) + digest.more
        # the build worked out why each paper matched already, for the digest's page
        known = digest.whys if digest.ordered and len(digest.whys) == len(digest.items) else ()
        # a feedback link names the paper by its number: the build stores a digest's papers
        # in the order it shows them (sent.position = number - 1)
        fb = self.links.feedback(sub.id, sub.link_gen, digest.period)
        fb_html = str(escape(fb))
        numbered = [(n, item, known[n - 1] if known else why_text(item))
                    for n, item in enumerate(shown, 1)]
        # recommended papers are stored after all the matches (those the email leaves out
        # too): their numbers, and so their feedback links, go on from there
        after = len(digest.items)
        recs = [(after + k, item, digest.recommended_whys[k - 1]
                 if len(digest.recommended_whys) == len(digest.recommended) else "")
                for k, item in enumerate(digest.recommended, 1)]
        digest_url = self.links.digest(sub.id, digest.period, sub.link_gen)
        ctx = {
            "subscriber": sub,
            "period": digest.period,
            "period_label": period_label(digest.period),
            "subject": self.subject(digest),
            "recommended_count": len(recs),
            "left_out": digest.left_out,
            "count": len(digest.items) + digest.more,
            "shown": len(shown),
            "more": more,
            "digest_url": digest_url,  # the digest's page: every paper, "View in browser"
            "archive_url": digest_url if more else "",  # (the name of older templates)
            "papers_checked": digest.papers_checked,
            "unsubscribe_url": self.links.unsubscribe(sub.id, sub.link_gen),
            "preferences_url": self.links.preferences(sub.id, sub.link_gen),
            "base_url": self.links.base_url,
            "rules": sub.rules,
            "css": self.css,
        }
        return ctx, numbered, recs, fb, fb_html

    def _fill(self, numbered: list[tuple[int, PaperMatch, str]], label: str, fb: str,
              fb_html: str) -> tuple[list[str], list[str]]:
        """The text and HTML blocks of (number, paper, why) with this digest's values."""
        texts, htmls = [], []
        for number, item, why in numbered:
            text, html = self.paper(item, number)
            why_line, why_html = _why_both(why, label)
            n = str(number)
            link = f"{fb}/{n}"
            texts.append(text.fill({"number": n, "label": label, "why": why_line, "fb": link,
                                    "feedback": _feedback_lines(link)}))
            htmls.append(html.fill({"number": n, "label": label, "why": why_html,
                                    "fb": f"{fb_html}/{n}", "feedback": ""}))
        return texts, htmls

    def _fill_into(self, numbered: list[tuple[int, PaperMatch, str]], label: str, fb: str,
                   fb_html: str, texts: list[bytes], htmls: list[bytes]) -> bool:
        """_fill as the message's bytes (mime.lf_bytes), appended to `texts` and `htmls`;
        False (and what was appended is to be dropped) where a value has a CR, which only
        the whole text's line ends can be made right for."""
        label_b = label.encode("ascii")
        fb_b, fb_html_b = lf_bytes(fb) + b"/", ascii_html(fb_html).encode("ascii") + b"/"
        for number, item, why in numbered:
            text, html = self.paper(item, number)
            wire = _why_wire(why, label)
            if wire is None:
                return False
            nb = b"%d" % number
            link = fb_b + nb
            text.fill_into({"number": nb, "label": label_b, "why": wire[0], "fb": link,
                            # _feedback_lines of the link (fb, "/", the number) as bytes
                            "feedback": _FEEDBACK_HEADS_WIRE[
                                _feedback_wraps(len(fb) + 1 + len(nb))] + link}, texts)
            html.fill_into({"number": nb, "label": label_b, "why": wire[1],
                            "fb": fb_html_b + nb, "feedback": b""}, htmls)
        return True

    def paper(self, item: PaperMatch, number: int = 1) -> tuple[Block, Block]:
        """The text and HTML blocks of one paper, rendered once per run and paper; the text
        once more for the numbers of each width from 2 digits on (its title's continuation
        lines go under its first character: _title_indent, _title_width), so a digest fills
        no hole for them."""
        pid = item.paper.id
        cached = self.blocks.get(pid)
        if cached is None:
            if len(self.blocks) >= 50_000:  # a long-lived renderer must not grow forever
                self.blocks.clear()
                self.numbered.clear()
            cached = self.blocks[pid] = (
                self._paper_text(item, 1),
                Block(ascii_html(self.paper_html.render(
                    p=PaperView(*_paper_fields(item.paper)), css=self.css, **self._marks)),
                    self._mark_rx))
        if number < 10:
            return cached
        key = (pid, len(str(number)))
        text = self.numbered.get(key)
        if text is None:
            text = self.numbered[key] = self._paper_text(item, number)
        return text, cached[1]

    def _paper_text(self, item: PaperMatch, number: int) -> Block:
        """paper.txt's block of `item` for a number as wide as `number`."""
        return Block(self.paper_text.render(
            p=PaperView(*_paper_fields(item.paper)), css=self.css,
            title_width=_title_width(number), indent=_title_indent(len(str(number))),
            **self._marks), self._mark_rx)

    def subject(self, digest: Digest) -> str:
        # the papers this email brings: its rule matches and its recommendations
        n = len(digest.items) + digest.more + len(digest.recommended)
        prefix = f"{self.list_name} {period_label(digest.period)}"
        if not n and digest.left_out:  # every match was unlike the reader's seeds (min_score)
            return f"{prefix}: no paper kept ({digest.left_out} unlike your seeds)"
        if not n:  # the empty-day note: say how much was checked, so silence is never ambiguous
            c = digest.papers_checked
            return f"{prefix}: nothing matched ({c} paper{'s' if c != 1 else ''} checked)"
        return f"{prefix}: {n} new paper{'s' if n != 1 else ''}"

    def render(self, digest: Digest) -> tuple[str, str]:
        """(text, html) bodies. The HTML is ASCII: other characters are written as
        character references (&#252;), so the part needs no transfer encoding at all.
        A digest without papers is the short "nothing matched" note."""
        return self._bodies(digest, self.context(digest))

    def _bodies(self, digest: Digest, ctx: dict) -> tuple[str, str]:
        if not digest.items:
            return (self._render(self.empty_text, ctx),
                    ascii_html(self._render(self.empty_html, ctx)))
        text, html = ctx["items"]
        rec_text, rec_html = ctx["recommended"]
        return (self._render(self.text_template, ctx, items=text, recommended=rec_text),
                ascii_html(self._render(self.html_template, ctx, items=html,
                                        recommended=rec_html)))

    def _render(self, template: jinja2.Template, ctx: dict, **values) -> str:
        """template.render(ctx, **values), with the globals copied once per renderer:
        Template.render merges its ChainMap of globals key by key in Python for every
        call, a quarter of a frame's ~30 us (the context then holds the same values)."""
        context = template.new_context({**self._globals, **ctx, **values}, shared=True)
        try:
            return template.environment.concat(template.root_render_func(context))
        except Exception:  # as Template.render: the template's own traceback, with its
            # file and line, raised again
            template.environment.handle_exception()
            raise  # pragma: no cover - handle_exception always raises

    def _wire_bodies(self, digest: Digest, ctx: dict, numbered: list, recs: list, fb: str,
                     fb_html: str) -> tuple[bytes, bytes] | None:
        """The text and HTML bodies of render() as mime.lf_bytes, put together from the
        papers' blocks as bytes (Block.wire) and the frame templates rendered with a mark
        where each list of papers goes, so the papers (nine tenths of a message) are not
        joined, wrapped as Markup, escaped, joined again and encoded for every digest
        (-10% of the instructions of a 17-paper digest's order, message and packing,
        measured with callgrind). None where the frame may not be cut so: a frame that does more with
        `items` or `recommended` than print them (see _printed_only), or a CR in a value."""
        if not digest.items or not self._splice:
            return None
        texts: list[bytes] = []
        htmls: list[bytes] = []
        rec_texts: list[bytes] = []
        rec_htmls: list[bytes] = []
        if not (self._fill_into(numbered, "matched", fb, fb_html, texts, htmls)
                and self._fill_into(recs, "recommended", fb, fb_html, rec_texts, rec_htmls)):
            return None
        slots = self._slot_marks
        lists = {"items": (texts, htmls), "recommended": (rec_texts, rec_htmls)}
        text = self._render(self.text_template, ctx, items=slots["items"],
                            recommended=slots["recommended"])
        html = ascii_html(self._render(self.html_template, ctx, items=Markup(slots["items"]),
                                       recommended=Markup(slots["recommended"])))
        out = []
        for k, frame in enumerate((text, html)):
            pieces = self._slot_rx.split(frame)
            wire = []
            for i, piece in enumerate(pieces):
                if i % 2:
                    wire += lists[piece][k]
                elif piece:
                    wire.append(lf_bytes(piece))
            out.append(b"".join(wire))
        return out[0], out[1]

    def message(self, digest: Digest, *, now: datetime | None = None) -> tuple[str, bytes]:
        """(Message-ID, RFC 5322 bytes with CRLF line ends) for one digest or empty-day
        note, with every header of a digest (List-Unsubscribe, DKIM, ...)."""
        ctx, numbered, recs, fb, fb_html = self._frame_context(digest)
        bodies = self._wire_bodies(digest, ctx, numbered, recs, fb, fb_html)
        if bodies is None:  # a template that uses its papers otherwise, a CR in a value
            bodies = self._bodies(digest, self._with_lists(ctx, numbered, recs, fb, fb_html))
        text, html = bodies
        sub = digest.subscriber
        token = ctx["unsubscribe_url"].rpartition("/")[2]
        message_id = (f"<digest.{safe_token(digest.period)}.{sub.id}.{secrets.token_hex(8)}"
                      f"@{self.domain}>")
        mailto = f"mailto:{self.mailto}?subject=unsubscribe%20{token}"
        if self.mailto_tokens:
            token = unsubscribe_mail_token(self.links.secret, sub.id)
            mailto = f"mailto:{plus_address(self.mailto, token)}?subject=unsubscribe%20{token}"
        headers = [
            ("From", self.from_header),
            ("To", address_header(sub.name, sub.email)),
            ("Subject", encode_text(ctx["subject"])),
            ("Date", date_header(now or datetime.now(timezone.utc))),
            ("Message-ID", message_id),
        ]
        if self.reply_to_header:
            headers.append(("Reply-To", self.reply_to_header))
        headers += [
            ("List-Id", self.list_id),
            # RFC 5064: where this message is archived (its page lists every paper)
            ("Archived-At", f"<{ctx['digest_url']}>"),
            ("List-Unsubscribe", f"<{ctx['unsubscribe_url']}>,\r\n <{mailto}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Auto-Submitted", "auto-generated"),
            ("Precedence", "bulk"),
            ("Feedback-ID", f"{sub.frequency}:digest:digestd:{self.feedback_id}"),
        ]
        raw = build_alternative(headers, text, html, eight_bit=self.eight_bit)
        if self.dkim is not None:
            raw = self.dkim.sign(raw)
        return message_id, raw


