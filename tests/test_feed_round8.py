"""An eighth round of field faults of the four kinds (tests/field/README.md): items that share a
link (03), relative links (05), escaping (06), arXiv's old RSS 1.0 and other publishers' RSS
1.0 and 0.9x (18). Each feed is served over real HTTP and polled into a real store."""

from __future__ import annotations

import pytest

from digestd.config import SourceConfig
from digestd.jobs_poll import poll_sources
from digestd.match import match_rules
from digestd.models import Digest, PaperMatch, RuleMatch, Subscriber
from digestd.render import Links, Renderer

from .http_fixtures import Reply
from .http_fixtures import server_fixture  # noqa: F401 (a fixture)
from .test_field import atom
from .test_sources import fast_http


def rss(items: str, attrs: str = "") -> bytes:
    """An RSS 2.0 feed of `items`; `attrs` on its channel (an xml:base)."""
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"'
            f"><channel{attrs}><title>T</title><link>https://j.example.org/</link>{items}"
            f"</channel></rss>").encode()


@pytest.fixture
async def http():
    client = fast_http()
    yield client
    await client.aclose()


async def polls(server, store, http, *bodies: bytes, path: str = "/j/feed.xml",
                url: str = "", content_type: str = "application/rss+xml") -> list[list[str]]:
    """Serve each body in turn at `path` (no validators: each poll reads it in full) and
    poll the one `feed` source after each; the titles each poll brought."""
    source = SourceConfig(name="j", kind="feed", url=url or server.url(path))
    out = []
    for body in bodies:
        server.payload(path, body, content_type, validators=False)
        before = {p.id for p in store.papers_since("")}
        (report,) = await poll_sources([source], store, http=http)
        assert report.error is None, report.error
        out.append([p.title for p in store.papers_since("") if p.id not in before])
    return out


async def papers_of(server, store, http, body: bytes, **kw):
    await polls(server, store, http, body, **kw)
    return store.papers_since("")


def titles(rule: str, papers) -> list[str]:
    return [m.paper.title for m in match_rules([rule], papers)]


U = "https://j.example.org/upcoming/"
T = ("Pruning made-up networks", "Noisy labels in invented data", "Sparse invented graphs")


def items(template: str, *, n: int = 3) -> str:
    return "".join(template.format(i=i, t=T[i], u=U) for i in range(n))


# -- kind 03: identity of items that share a link ----------------------------------------------

@pytest.mark.parametrize("feeds, news", [
    # a shared link, no guid at all: three items, told apart by their titles; polled twice,
    # nothing new the second time
    ([items("<item><title>{t}</title><link>{u}</link></item>")] * 2, [3, 0]),
    # the guid is the shared page itself (a permalink guid): no identity either
    ([items('<item><title>{t}</title><link>{u}</link><guid isPermaLink="true">{u}</guid>'
            '</item>')] * 2, [3, 0]),
    # every guid made anew at once, on the shared page: the same three papers (the feed
    # renumbered its guids; their link and title say so)
    ([items("<item><title>{t}</title><link>{u}</link><guid>IJ-{i}</guid></item>"),
      items("<item><title>{t}</title><link>{u}</link><guid>XX-{i}</guid></item>")], [3, 0]),
    # ... and numbered by position: a new item on top moves the others down
    ([items("<item><title>{t}</title><link>{u}</link><guid>{i}</guid></item>", n=2),
      "<item><title>A brand new invented result</title><link>" + U + "</link><guid>0</guid>"
      "</item>" + "".join(f"<item><title>{T[i]}</title><link>{U}</link><guid>{i + 1}</guid>"
                          "</item>" for i in range(2))], [2, 1]),
    # one article's guid changed (a CMS moved, http became https) at its own address under
    # one title: the same article
    (["<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7</link>"
      "<guid>old-7</guid></item><item><title>Sparse invented graphs</title><link>"
      "https://j.example.org/a/8</link><guid>old-8</guid></item>",
      "<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7</link>"
      "<guid>new-7</guid></item><item><title>Sparse invented graphs</title><link>"
      "https://j.example.org/a/8</link><guid>old-8</guid></item>"], [2, 0]),
    (['<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7</link>'
      '<guid isPermaLink="true">http://j.example.org/a/7</guid></item>',
      '<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7</link>'
      '<guid isPermaLink="true">https://j.example.org/a/7</guid></item>'], [1, 0]),
    # ... but a page that shows one item after another (a column) under a new guid: a new
    # item, whatever its title (the fourth round's rule stays)
    (["<item><title>What is your diagnosis?</title><link>https://j.example.org/column</link>"
      "<guid>dx-1</guid></item>",
      "<item><title>What is your diagnosis?</title><link>https://j.example.org/column</link>"
      "<guid>dx-2</guid></item>"], [1, 1]),
    # tracking tags that change from poll to poll, in the link and in a permalink guid
    (["<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7?"
      "utm_source=rss&amp;utm_campaign=d1</link><guid>https://j.example.org/a/7?utm_source="
      "rss&amp;utm_campaign=d1</guid></item>",
      "<item><title>Pruning made-up networks</title><link>https://j.example.org/a/7?"
      "utm_source=rss&amp;utm_campaign=d2</link><guid>https://j.example.org/a/7?utm_source="
      "rss&amp;utm_campaign=d2</guid></item>"], [1, 0]),
    # ... on a shared page, with titles too short to be an identity of their own
    ([f"<item><title>{t}</title><link>{U}?utm_campaign=d{day}</link></item>"
      f"<item><title>Erratum</title><link>{U}?utm_campaign=d{day}</link></item>"
      for t, day in (("Editorial", 1), ("Editorial", 2))], [2, 0]),
])
async def test_items_that_share_a_link(server, store, http, feeds, news):
    got = await polls(server, store, http, *(rss(f) for f in feeds))
    assert [len(new) for new in got] == news


async def test_atom_entries_sharing_an_alternate_link(server, store, http):
    def feed(prefix: str) -> bytes:
        return atom("".join(f'<entry><id>{prefix}:{i}</id><title>{t}</title><link rel='
                            f'"alternate" href="{U}"/><link rel="related" href="{U}r/{i}"/>'
                            f"</entry>" for i, t in enumerate(T)))
    got = await polls(server, store, http, feed("urn:x"), feed("urn:x"), feed("urn:y"),
                      content_type="application/atom+xml")
    assert [len(new) for new in got] == [3, 0, 0]
    papers = store.papers_since("")
    assert titles("prun*", papers) == ["Pruning made-up networks"]
    assert {p.url for p in papers} == {U}


async def test_one_article_listed_twice_at_one_link_under_one_title(server, store, http):
    """A journal lists an article in two sections, under two guids, with one link and one
    title: a reader cannot tell the two apart, so it is one paper (known by both guids). Two
    items there with descriptions of their own (a column's two weeks) are two."""
    relisted = rss("<item><title>Pruning made-up networks</title><link>" + U + "</link>"
                   "<guid>research-7</guid><description>We prune.</description></item>"
                   "<item><title>Sparse invented graphs</title><link>" + U + "</link>"
                   "<guid>research-8</guid></item>"
                   "<item><title>Pruning made-up networks</title><link>" + U + "</link>"
                   "<guid>most-read-7</guid></item>")
    alone = rss("<item><title>Pruning made-up networks</title><link>" + U + "</link>"
                "<guid>most-read-7</guid></item>")
    assert await polls(server, store, http, relisted, relisted, alone) == [
        ["Pruning made-up networks", "Sparse invented graphs"], [], []]
    column = rss("".join(f"<item><title>What is your diagnosis?</title><link>{U}</link>"
                         f"<guid>dx-{i}</guid><description>Case {i}: an invented rash."
                         f"</description></item>" for i in (1, 2)))
    assert [len(new) for new in await polls(server, store, http, column)] == [2]


# -- kind 05: relative links -------------------------------------------------------------------

def item(link: str, extra: str = "", attrs: str = "") -> str:
    return (f"<item{attrs}><title>A paper on invented graphs</title><link>{link}</link>"
            f"<guid>g1</guid>{extra}</item>")


@pytest.mark.parametrize("body, expect", [
    # xml:base on the channel, on the item, on the link element; a relative one on top of
    # the feed's URL
    (rss(item("article/1"), attrs=' xml:base="https://b.example.org/x/"'),
     "https://b.example.org/x/article/1"),
    (rss(item("article/1", attrs=' xml:base="https://b.example.org/y/"')),
     "https://b.example.org/y/article/1"),
    (rss('<item><title>A</title><link xml:base="https://b.example.org/z/">article/1</link>'
         "<guid>g</guid></item>"), "https://b.example.org/z/article/1"),
    (rss(item("article/1"), attrs=' xml:base="../jb/"'), "{server}/jb/article/1"),
    (rss(item("article/1", attrs=' xml:base="sub/"'), attrs=' xml:base="../jb/"'),
     "{server}/jb/sub/article/1"),
    # the feed's own URL: a path, "..", root-relative, protocol-relative, a query alone,
    # white space around the link
    (rss(item("article/1")), "{server}/ja/article/1"),
    (rss(item("../article/1")), "{server}/article/1"),
    (rss(item("/abs/1")), "{server}/abs/1"),
    (rss(item("//cdn.example.org/a/3")), "http://cdn.example.org/a/3"),
    (rss(item("?id=3")), "{server}/ja/feed.xml?id=3"),
    (rss(item("\n      article/1   \n")), "{server}/ja/article/1"),
    # Atom: a relative href with and without xml:base
    (atom('<entry><id>e1</id><title>A</title><link href="1"/></entry>'), "{server}/ja/1"),
    (atom('<entry><id>e1</id><title>A</title><link href="1"/></entry>',
          base="https://b.example.org/q/"), "https://b.example.org/q/1"),
    # RSS 1.0: rdf:about is the item's URI, relative to xml:base or the feed's URL, and its
    # link where it has no <link>
    (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
     b' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>S</title><link>'
     b"https://s.example.com/</link><description>d</description></channel><item rdf:about="
     b'"a/8"><title>Invented worms</title></item></rdf:RDF>', "{server}/ja/a/8"),
    # links that are no web address are no link (nothing clickable reaches the digest)
    (rss(item("javascript:alert(1)")), ""),
    (rss(item(" JavaScript:alert(1)")), ""),
    (rss(item("data:text/html;base64,PHNjcmlwdD4=")), ""),
])
async def test_relative_links(server, store, http, body, expect):
    (paper,) = await papers_of(server, store, http, body, path="/ja/feed.xml")
    assert paper.url == expect.format(server=server.url())


async def test_pdf_links_resolved_and_taken(server, store, http):
    """An RSS <enclosure> or an Atom link of type application/pdf is the paper's PDF (the
    digest links it), resolved as the item's link is; one that is no web address is none."""
    body = rss(item("article/1", '<enclosure url="pdf/1.pdf" type="application/pdf" '
                    'length="1"/>') + "<item><title>Another invented paper</title><link>"
               "article/2</link><guid>g2</guid><enclosure url=\"javascript:x()\" type="
               '"application/pdf" length="1"/></item>')
    first, second = await papers_of(server, store, http, body, path="/ja/feed.xml")
    assert first.pdf_url == server.url("/ja/pdf/1.pdf") and second.pdf_url == ""
    entry = atom('<entry><id>e1</id><title>A</title><link href="a/1"/><link rel="related" '
                 'type="application/pdf" href="a/1.pdf"/></entry>',
                 base="https://b.example.org/q/")
    (paper,) = [p for p in await papers_of(server, store, http, entry, path="/jb/feed.xml")
                if p.title == "A"]
    assert (paper.url, paper.pdf_url) == ("https://b.example.org/q/a/1",
                                          "https://b.example.org/q/a/1.pdf")


async def test_relative_links_after_a_redirect_and_a_relative_xml_base(server, store, http):
    body = rss(item("article/1"), attrs=' xml:base="../jb/"')
    server.payload("/ja/feed.xml", body, "application/rss+xml")
    server.replies("/old/feed.xml", Reply(302, b"", {"Location": server.url("/ja/feed.xml")}))
    (report,) = await poll_sources([SourceConfig(name="j", kind="feed",
                                                 url=server.url("/old/feed.xml"))], store,
                                   http=http)
    assert report.error is None
    assert [p.url for p in store.papers_since("")] == [server.url("/jb/article/1")]


async def test_nothing_a_feed_says_is_markup_or_a_link_in_the_html_digest(server, store, http):
    body = rss('<item><title><![CDATA[<script>alert(1)</script> Hostile "invented" title]]>'
               '</title><link>javascript:alert(2)</link><guid>h1</guid><description><![CDATA['
               '<p>Abstract <img src=x onerror="alert(3)"> with <a href="javascript:alert(4)">'
               "a link</a>.</p>]]></description></item>")
    (paper,) = await papers_of(server, store, http, body)
    assert paper.url == "" and "onerror" not in paper.abstract
    digest = Digest(subscriber=Subscriber(id=1, email="a@example.org"), period="2026-11-27",
                    items=(PaperMatch(paper, (RuleMatch(0, "hostile"),)),))
    _, html = Renderer(links=Links("https://digest.example.org", b"k" * 32),
                       from_addr="d@example.org").render(digest)
    assert "<script>alert" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Hostile" in html


# -- kind 06: escaping -------------------------------------------------------------------------

@pytest.mark.parametrize("title, expect", [
    # escaped twice: a reader expects the sign
    ("Aged &amp;lt;65 versus &amp;gt;80 years", "Aged <65 versus >80 years"),
    # numeric references, decimal and hexadecimal
    ("Aged &#60;65 versus &#x3E;80 years", "Aged <65 versus >80 years"),
    ("Aged &#x3C;65 versus &#62;80 years", "Aged <65 versus >80 years"),
    # CDATA: "<" and "&" are text
    ("<![CDATA[Aged <65 versus >80 years]]>", "Aged <65 versus >80 years"),
    ("<![CDATA[When a < b and c > d versus R&D]]>", "When a < b and c > d versus R&D"),
    ("We &lt;3 invented versus real data", "We <3 invented versus real data"),
    # sub- and superscripts keep their text
    ("<![CDATA[CO<sub>2</sub> capture versus 10<sup>-3</sup> M]]>",
     "CO₂ capture versus 10⁻³ M"),
    # what XML forbids but feeds hold (the feed is not well-formed): a bare "&", a "<"
    # before a digit, HTML's named entities, a UTF-16 pair written as two references
    ("R&D and AT&T versus Q&A at <5%", "R&D and AT&T versus Q&A at <5%"),
    ("Caf&eacute; culture&nbsp;versus tea &mdash; an invented study",
     "Café culture versus tea — an invented study"),
    ("Emoji &#xD83D;&#xDE00; versus words", "Emoji 😀 versus words"),
])
async def test_escaped_titles_read_as_written(server, store, http, title, expect):
    (paper,) = await papers_of(server, store, http,
                               rss(f"<item><title>{title}</title><guid>t</guid></item>"))
    assert paper.title == expect
    assert titles("title:versus", [paper]) == [expect]


async def test_references_to_no_character_do_not_stop_the_feed(server, store, http):
    """A reference to a lone surrogate or past U+10FFFF stopped feedparser with an exception
    (UnicodeEncodeError, ValueError): the whole feed failed, every poll, while the item was
    in it. Such a reference is left out; the rest of the feed is read."""
    body = rss("<item><title>Lone &#xD800; surrogate</title><guid>1</guid></item>"
               "<item><title>Far &#1114112; away&#0;</title><guid>2</guid></item>"
               "<item><title>Huge &#99999999999; number</title><guid>3</guid></item>"
               "<item><title>A good invented paper</title><guid>4</guid></item>")
    assert [p.title for p in await papers_of(server, store, http, body)] == [
        "Lone surrogate", "Far away", "Huge number", "A good invented paper"]


async def test_a_feed_made_well_formed_keeps_its_validators(server, store, http):
    """A feed whose only fault is a bare "&" or an HTML entity is read in full: its ETag is
    kept, so the next poll is a conditional one (304)."""
    body = rss("<item><title>R&D versus AT&T&nbsp;now</title><guid>1</guid></item>")
    server.payload("/j/feed.xml", body, "application/rss+xml")
    source = SourceConfig(name="j", kind="feed", url=server.url("/j/feed.xml"))
    (first,) = await poll_sources([source], store, http=http)
    (second,) = await poll_sources([source], store, http=http)
    assert (first.error, first.new) == (None, 1) and second.not_modified
    assert store.source_state("j").etag is not None


async def test_a_bare_ampersand_costs_no_item_its_doi(server, store, http):
    # PubMed's dc:identifier values, the DOI first: feedparser keeps the last, and the
    # document's own reading of them needs it well-formed
    body = rss("<item><title>Sleep &amp; R&D in invented shift workers</title><link>"
               "https://pubmed.example.gov/39999999/</link><dc:identifier>doi:10.5555/sleep.77"
               "</dc:identifier><dc:identifier>pmid:39999999</dc:identifier></item>")
    (paper,) = await papers_of(server, store, http, body)
    assert (paper.id, paper.title) == ("doi:10.5555/sleep.77",
                                       "Sleep & R&D in invented shift workers")


@pytest.mark.parametrize("entry, expect", [
    # Atom says what a title is: html loses its markup, text keeps what it holds
    ('<title type="html">An &lt;i&gt;in vivo&lt;/i&gt; study, aged &amp;lt;65 versus 80'
     "</title>", "An in vivo study, aged <65 versus 80"),
    ('<title type="text">Using &lt;b&gt; versus &lt;strong&gt; in invented pages</title>',
     "Using <b> versus <strong> in invented pages"),
    ('<title type="html">CO&lt;sub&gt;2&lt;/sub&gt; versus CH&lt;sub&gt;4&lt;/sub&gt;'
     "</title>", "CO₂ versus CH₄"),
    ('<title type="html">A&amp;nbsp;B &amp;mdash; caf&amp;eacute; versus tea</title>',
     "A B — café versus tea"),
])
async def test_atom_titles_by_their_type(server, store, http, entry, expect):
    (paper,) = await papers_of(server, store, http, atom(f"<entry><id>e</id>{entry}</entry>"),
                               content_type="application/atom+xml")
    assert paper.title == expect
    assert titles("title:versus", [paper]) == [expect]


@pytest.mark.parametrize("description, expect", [
    ("&lt;p&gt;We study &lt;i&gt;X&lt;/i&gt; in patients aged &amp;lt;65.&lt;/p&gt;",
     "We study X in patients aged <65."),
    ("&amp;lt;p&amp;gt;Escaped twice: &amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;&amp;lt;/p"
     "&amp;gt;", "Escaped twice: bold"),
    ("<![CDATA[<p>Costs&nbsp;fell &mdash; by 5&ndash;10% in Orl&eacute;ans&hellip;</p>]]>",
     "Costs fell — by 5–10% in Orléans…"),
    ("<![CDATA[<p>Safe</p><script>alert(1)</script><style>p{}</style>]]>", "Safe"),
])
async def test_descriptions_as_a_reader_sees_them(server, store, http, description, expect):
    (paper,) = await papers_of(server, store, http, rss(
        f"<item><title>Invented</title><guid>d</guid><description>{description}"
        "</description></item>"))
    assert paper.abstract == expect


# -- kind 18: arXiv's old RSS 1.0, and other publishers' RSS 1.0 and 0.9x ----------------------

OLD_HEAD = ('<?xml version="1.0" encoding="UTF-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
            '22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/'
            'elements/1.1/"><channel rdf:about="http://arxiv.org/rss/cs.LG"><title>cs.LG updates '
            "on arXiv.org</title><link>http://arxiv.org/</link><description>x</description>"
            "</channel>")


def linked(name: str) -> str:
    return f'&lt;a href="http://arxiv.org/find/cs/1/au:+X/0/1/0/all/0/1"&gt;{name}&lt;/a&gt;'


def old_item(n: str, title: str, creators: str, *, link: bool = True,
             description: str = "&lt;p&gt;We invent.&lt;/p&gt;") -> str:
    about = f"http://arxiv.org/abs/{n}"
    return (f'<item rdf:about="{about}"><title>{title}</title>'
            + (f"<link>{about}</link>" if link else "")
            + f"<description>{description}</description>{creators}</item>")


async def test_old_arxiv_format_variants(server, store, http):
    body = (OLD_HEAD + "".join((
        # accents as HTML entities inside the links, escaped once more for XML
        old_item("2312.00201", "Invented accents. (arXiv:2312.00201v1 [cs.LG])",
                 "<dc:creator>" + ", ".join(linked(n) for n in (
                     "Jos&amp;#xE9; Mu&amp;#xF1;oz", "Zo&amp;#235; Sample",
                     "J&amp;ouml;rg K&amp;uuml;hn")) + "</dc:creator>"),
        # one dc:creator each, a replacement
        old_item("2312.00202", "Invented update. (arXiv:2312.00202v2 [cs.LG] UPDATED)",
                 f"<dc:creator>{linked('Ada Example')}</dc:creator><dc:creator>"
                 f"{linked('Bo Sample')}</dc:creator>"),
        # a cross-list, a title that ends in a question mark, <p> paragraphs
        old_item("2312.00203", "Is it invented?. (arXiv:2312.00203v1 [math.ST] CROSS LISTED)",
                 f"<dc:creator>{linked('Cy Test')}, and {linked('Di Roe')}</dc:creator>",
                 description="&lt;p&gt;First &lt;i&gt;part&lt;/i&gt; with p&amp;lt;0.05."
                             "&lt;/p&gt;\n&lt;p&gt;Second part.&lt;/p&gt;"),
        # no <link>: rdf:about says which paper it is
        old_item("2312.00204", "Invented without a link. (arXiv:2312.00204v1 [cs.LG])",
                 "<dc:creator>Ed Poe</dc:creator>", link=False),
    )) + "</rdf:RDF>").encode()
    papers = {p.id: p for p in await papers_of(server, store, http, body, path="/rss/cs.LG",
                                                content_type="application/rdf+xml")}
    assert list(papers) == ["arxiv:2312.00201", "arxiv:2312.00202", "arxiv:2312.00203",
                            "arxiv:2312.00204"]
    accents, update, cross, bare = papers.values()
    assert accents.authors == ("José Muñoz", "Zoë Sample", "Jörg Kühn")
    assert (update.title, update.authors, update.version) == (
        "Invented update", ("Ada Example", "Bo Sample"), 2)
    assert (cross.title, cross.categories, cross.authors) == (
        "Is it invented?", ("math.ST",), ("Cy Test", "Di Roe"))
    assert cross.abstract == "First part with p<0.05. Second part."
    assert (bare.title, bare.url) == ("Invented without a link",
                                      "https://arxiv.org/abs/2312.00204")
    everything = list(papers.values())
    assert titles("author:find", everything) == [] and titles("author:au", everything) == []
    assert titles("author:munoz", everything) == ["Invented accents"]


async def test_old_arxiv_items_known_by_rdf_about_alone(server, store, http):
    # no item has a <link>: rdf:about says the feed is arXiv's, and which paper each is
    body = (OLD_HEAD + old_item("2312.00205", "Invented alone. (arXiv:2312.00205v3 [cs.LG] "
                                "UPDATED)", "<dc:creator>Ed Poe</dc:creator>", link=False)
            + "</rdf:RDF>").encode()
    (paper,) = await papers_of(server, store, http, body, path="/rss/cs.LG",
                               content_type="application/rdf+xml")
    assert (paper.id, paper.title, paper.version, paper.categories) == (
        "arxiv:2312.00205", "Invented alone", 3, ("cs.LG",))


async def test_one_paper_in_arxivs_old_and_new_formats(server, store, http):
    old = (OLD_HEAD + old_item("2312.00101", "Invented Pruning of Tiny Networks. (arXiv:"
                               "2312.00101v1 [cs.LG])", f"<dc:creator>{linked('Ada Example')}"
                               "</dc:creator>") + "</rdf:RDF>").encode()
    new = ('<?xml version="1.0"?><rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="'
           'http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>cs.LG updates on '
           "arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link><description>x"
           "</description><item><title>Invented Pruning of Tiny Networks</title><link>https://"
           "arxiv.org/abs/2312.00101</link><description>arXiv:2312.00101v2 Announce Type: "
           "replace Abstract: We prune.</description><guid isPermaLink=\"false\">oai:arXiv.org:"
           "2312.00101v2</guid><arxiv:announce_type>replace</arxiv:announce_type><dc:creator>"
           "Ada Example</dc:creator></item></channel></rss>").encode()
    assert await polls(server, store, http, old, new, path="/rss/cs.LG") == [
        ["Invented Pruning of Tiny Networks"], []]
    (paper,) = store.papers_since("")
    assert (paper.id, paper.version) == ("arxiv:2312.00101", 2)


async def test_other_publishers_rss10_and_rss09x(server, store, http):
    rdf = (b'<?xml version="1.0" encoding="UTF-8"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/'
           b'elements/1.1/" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/" '
           b'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel rdf:about="https:'
           b'//pub.example.com/rss"><title>Pub</title><link>https://pub.example.com/</link>'
           b"<description>TOC</description></channel>"
           b'<item rdf:about="https://pub.example.com/articles/s1"><title>Invented coral</title>'
           b"<link>https://pub.example.com/articles/s1</link><content:encoded><![CDATA[<p>Pub, "
           b'Published online: 02 January 2026; <a href="https://doi.org/10.5555/s1">doi:'
           b"10.5555/s1</a></p>Invented coral teaser.]]></content:encoded><dc:creator>Ann Roe"
           b"</dc:creator><dc:creator>Bo Sample</dc:creator><dc:identifier>doi:10.5555/s1"
           b"</dc:identifier><dc:date>2026-01-02</dc:date><prism:doi>10.5555/s1</prism:doi>"
           b"<prism:coverDate>2026-03-01</prism:coverDate></item>"
           b'<item rdf:about="articles/s2"><title>Invented reef &amp; sponge</title>'
           b"<prism:publicationDate>2026-01-03</prism:publicationDate></item></rdf:RDF>")
    coral, reef = await papers_of(server, store, http, rdf, path="/pub/toc.rdf",
                                  content_type="application/rdf+xml")
    assert (coral.id, coral.authors, coral.published, coral.abstract) == (
        "doi:10.5555/s1", ("Ann Roe", "Bo Sample"), "2026-01-02", "Invented coral teaser.")
    assert (reef.title, reef.url, reef.published) == (
        "Invented reef & sponge", server.url("/pub/articles/s2"), "2026-01-03")
    netscape = (b'<?xml version="1.0" encoding="ISO-8859-1"?><!DOCTYPE rss PUBLIC "-//Netscape '
                b'Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-'
                b'0.91.dtd"><rss version="0.91"><channel><title>Old</title><link>https://old.'
                b"example.net/</link><description>d</description><language>en</language>"
                b"<item><title>Caf\xe9 society &amp; R&D&nbsp;today</title><link>p?id=1</link>"
                b"<description>An &lt;b&gt;old&lt;/b&gt; abstract, &eacute;t&eacute;."
                b"</description></item></channel></rss>")
    (old,) = [p for p in await papers_of(server, store, http, netscape, path="/old/rss.xml")
              if p.source == "j" and p.title.startswith("Caf")]
    assert (old.title, old.abstract, old.url) == (
        "Café society & R&D today", "An old abstract, été.", server.url("/old/p?id=1"))
    enclosure = (b'<?xml version="1.0"?><rss version="0.92"><channel><title>Old</title><link>'
                 b"https://old.example.net/</link><description>d</description><item><title>"
                 b"Invented enclosure</title><link>https://old.example.net/x/4</link><enclosure "
                 b'url="/files/4.pdf" length="1" type="application/pdf"/></item></channel></rss>')
    (pdf,) = [p for p in await papers_of(server, store, http, enclosure, path="/old/092.xml")
              if p.title == "Invented enclosure"]
    assert pdf.pdf_url == server.url("/files/4.pdf")
