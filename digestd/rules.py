"""The keyword rule language (../shared/RULES.md): tokenize, parse, evaluate, explain."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import RuleError
from .models import Hit, Paper
from .text import collapse, normalize, words

FIELDS = ("title", "abstract", "author", "category", "source")
# Fields whose atoms compare the whole normalized value, not words.
VALUE_FIELDS = ("category", "source")
MAX_LENGTH = 1000
MAX_DEPTH = 20
MIN_PREFIX = 2
OPERATORS = ("AND", "OR", "NOT")

_FIELD_LIST = ", ".join(FIELDS)
_FIELD_NAME = re.compile(r"([A-Za-z]+):")
_WORD_CHAR = re.compile(r"[^\W_]")
# Characters that end a bare term; a category or source value with one of them is quoted.
_TERM_END = frozenset(' \t\n\r\f\v()"')


# --- the AST -------------------------------------------------------------------------------
# `col` is the 1-based column where the node starts, kept for error messages only: it is not
# part of equality or hashing, so identical atoms of different rules are one key in match.py.
# `field` None means "title or abstract".


@dataclass(frozen=True, slots=True)
class Word:
    """A word equal to `word` (already normalized)."""

    field: str | None
    word: str
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return _field_prefix(self.field) + self.word


@dataclass(frozen=True, slots=True)
class Prefix:
    """A word starting with `prefix`."""

    field: str | None
    prefix: str
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{_field_prefix(self.field)}{self.prefix}*"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive `words` in one field; with `prefix`, the last one is a prefix (`self-sup*`)."""

    field: str | None
    words: tuple[str, ...]
    prefix: bool = False
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        if self.prefix:  # only a bare term can say this, so write it as one
            return _field_prefix(self.field) + "-".join(self.words) + "*"
        return _field_prefix(self.field) + '"' + " ".join(self.words) + '"'


@dataclass(frozen=True, slots=True)
class Value:
    """A whole category or source value (normalized), or with `prefix` its beginning."""

    field: str
    value: str
    prefix: bool = False
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        quote = any(c in _TERM_END for c in self.value) or self.value.startswith("-")
        text = f'"{self.value}"' if quote else self.value
        return f"{self.field}:{text}{'*' if self.prefix else ''}"


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        inner = str(self.child)
        return f"-({inner})" if isinstance(self.child, (And, Or)) else f"-{inner}"


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return " ".join(f"({c})" if isinstance(c, Or) else str(c) for c in self.children)


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    col: int = field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return " OR ".join(str(c) for c in self.children)


Atom = Word | Prefix | Phrase | Value
Node = Word | Prefix | Phrase | Value | Not | And | Or
ATOMS = (Word, Prefix, Phrase, Value)


def _field_prefix(name: str | None) -> str:
    return f"{name}:" if name else ""


def canonical(node: Node) -> str:
    """The canonical text of a rule: equal for rules that differ only in spelling."""
    return str(node)


# --- tokenizer -----------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # ( ) - AND OR NOT FIELD PHRASE TERM
    text: str
    col: int


# Every character falls in exactly one alternative; a "-" that starts a term negates, one
# inside a term ("multi-task") is part of it and separates words later.
_LEXEME = re.compile(r"""
    (?P<space>\s+)
  | (?P<paren>[()])
  | "(?P<phrase>[^"]*)"
  | (?P<quote>")
  | (?P<minus>-)
  | (?P<run>[^\s()"]+)
""", re.VERBOSE)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(text)
    for m in _LEXEME.finditer(text):
        kind = m.lastgroup
        col = m.start() + 1
        if kind == "space":
            continue
        if kind == "paren":
            tokens.append(_Token(m.group(), m.group(), col))
        elif kind == "phrase":
            tokens.append(_Token("PHRASE", m.group("phrase"), col))
        elif kind == "quote":
            raise RuleError(f"unbalanced quote at column {col}", col)
        elif kind == "minus":
            after = text[col] if col < n else ""
            if not after or after.isspace() or after == ")":
                raise RuleError(f'nothing after "-" at column {col}', col)
            tokens.append(_Token("-", "-", col))
        else:
            run = m.group()
            if run in OPERATORS:  # upper case only: "or" is a word
                tokens.append(_Token(run, run, col))
                continue
            field = _FIELD_NAME.match(run) if ":" in run else None
            if field is None:
                tokens.append(_Token("TERM", run, col))
                continue
            name, end = field.group(1), field.end()
            if name.lower() not in FIELDS:
                raise RuleError(
                    f'unknown field "{name}" at column {col} (fields: {_FIELD_LIST})', col)
            tokens.append(_Token("FIELD", name.lower(), col))
            rest = run[end:]
            if rest.startswith("-"):
                raise RuleError(
                    f'"-" goes before the field: "-{run[:end]}{rest[1:]}" at column {col}', col)
            if rest:
                tokens.append(_Token("TERM", rest, col + end))
            elif m.end() >= n or text[m.end()] not in '("':
                raise RuleError(f'nothing after "{name}:" at column {col}', col)
    _check_parentheses(tokens)
    return tokens


def _check_parentheses(tokens: list[_Token]) -> None:
    """Balance and depth first: "(a OR" should name the open "(", not what is missing."""
    open_cols: list[int] = []
    for tok in tokens:
        if tok.kind == "(":
            open_cols.append(tok.col)
            if len(open_cols) > MAX_DEPTH:
                raise RuleError(f"nesting deeper than {MAX_DEPTH} at column {tok.col}", tok.col)
        elif tok.kind == ")":
            if not open_cols:
                raise RuleError(f'unbalanced ")" at column {tok.col}', tok.col)
            open_cols.pop()
    if open_cols:
        raise RuleError(f'unbalanced "(" at column {open_cols[-1]}', open_cols[-1])


# --- parser --------------------------------------------------------------------------------

_STARTS_UNARY = frozenset(("(", "-", "NOT", "FIELD", "PHRASE", "TERM"))



def _missing_after(op: _Token, nxt: _Token | None) -> RuleError:
    """The error for an operator (OR, AND, NOT, -) with no operand after it: `nxt` is what
    comes instead (None at the end, a ")" or another operator)."""
    if nxt is not None and nxt.kind in ("OR", "AND"):
        return RuleError(f'"{nxt.text}" right after "{op.text}" at column {nxt.col}: a word, '
                         'a "phrase" or ( must come between', nxt.col)
    return RuleError(f'nothing after "{op.text}" at column {op.col}', op.col)

class _Parser:
    """Recursive descent.

    or := and (OR and)*;  and := unary ([AND] unary)*;  unary := (- | NOT)* primary;
    primary := "(" or ")" | FIELD primary | PHRASE | TERM
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        node = self.parse_or(None)
        tok = self.peek()
        if tok is not None:  # only a ")" can stop parse_or early; balance was checked
            raise RuleError(f'unbalanced ")" at column {tok.col}', tok.col)
        return node

    def operand(self, op: _Token, ctx: str | None) -> Node:
        tok = self.peek()
        if tok is None or tok.kind not in _STARTS_UNARY:
            raise _missing_after(op, tok)
        return self.parse_unary(ctx)

    def parse_or(self, ctx: str | None) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind in ("OR", "AND"):
            raise RuleError(f'nothing before "{tok.text}" at column {tok.col}', tok.col)
        children = [self.parse_and(ctx)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind not in _STARTS_UNARY:
                raise _missing_after(tok, nxt)
            children.append(self.parse_and(ctx))
        return _join(Or, children)

    def parse_and(self, ctx: str | None) -> Node:
        children = [self.parse_unary(ctx)]
        while (tok := self.peek()) is not None:
            if tok.kind == "AND":
                self.take()
                children.append(self.operand(tok, ctx))
            elif tok.kind in _STARTS_UNARY:
                children.append(self.parse_unary(ctx))
            else:
                break
        return _join(And, children)

    def parse_unary(self, ctx: str | None) -> Node:
        # A loop, not recursion: 500 "-" in a row must not exhaust the stack.
        negations: list[_Token] = []
        while (tok := self.peek()) is not None and tok.kind in ("-", "NOT"):
            negations.append(self.take())
            nxt = self.peek()
            if nxt is None or nxt.kind not in _STARTS_UNARY:
                raise _missing_after(tok, nxt)
        node = self.parse_primary(ctx)
        for tok in reversed(negations):
            node = node.child if isinstance(node, Not) else Not(node, tok.col)
        return node

    def parse_primary(self, ctx: str | None) -> Node:
        tok = self.take()
        if tok.kind == "(":
            nxt = self.peek()
            if nxt is not None and nxt.kind == ")":
                raise RuleError(f"empty parentheses at column {tok.col}", tok.col)
            node = self.parse_or(ctx)
            self.take()  # the ")": balance was checked before parsing
            return node
        if tok.kind == "FIELD":
            if ctx is not None and ctx != tok.text:
                raise RuleError(
                    f'field "{tok.text}:" inside "{ctx}:" at column {tok.col}', tok.col)
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("(", "PHRASE", "TERM"):
                raise RuleError(f'nothing after "{tok.text}:" at column {tok.col}', tok.col)
            return self.parse_primary(tok.text)
        if tok.kind == "PHRASE":
            return _phrase(tok, ctx)
        return _term(tok, ctx)  # TERM: the callers only get here on a unary start


def _join(cls: type[And | Or], children: list[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    flat: list[Node] = []
    for child in children:  # (a b) c is a b c: one canonical form
        flat.extend(child.children if isinstance(child, cls) else (child,))
    return cls(tuple(flat), children[0].col)


def _normalize_value(text: str) -> str:
    return collapse(normalize(text))


def _term(tok: _Token, ctx: str | None) -> Node:
    raw, col = tok.text, tok.col
    star = raw.find("*")
    if star >= 0:
        if star != len(raw) - 1:
            raise RuleError(f'misplaced "*" in "{raw}" at column {col}', col)
        stem = raw[:-1]
        parts = words(stem)
        if sum(map(len, parts)) < MIN_PREFIX:
            raise RuleError(f'prefix "{raw}" is too short: at least {MIN_PREFIX} letters or '
                            f'digits before the "*" at column {col}', col)
        if ctx in VALUE_FIELDS:  # a category prefix like "cs.*" may end in a separator
            return Value(ctx, _normalize_value(stem), True, col)
        # "multi-*" would silently mean "multi*".
        if not _WORD_CHAR.match(normalize(stem)[-1]):
            raise RuleError(f'misplaced "*" in "{raw}" at column {col}', col)
        if len(parts) == 1:
            return Prefix(ctx, parts[0], col)
        return Phrase(ctx, tuple(parts), True, col)
    parts = words(raw)
    if not parts:
        raise RuleError(f'"{raw}" has no letters or digits at column {col}', col)
    if ctx in VALUE_FIELDS:
        return Value(ctx, _normalize_value(raw), False, col)
    return _words_node(parts, ctx, col)


def _phrase(tok: _Token, ctx: str | None) -> Node:
    raw, col = tok.text, tok.col
    if "*" in raw:
        raise RuleError(f'phrase "{raw}" may not contain "*" at column {col}', col)
    parts = words(raw)
    if not parts:
        raise RuleError(f"empty phrase at column {col}", col)
    if ctx in VALUE_FIELDS:
        return Value(ctx, _normalize_value(raw), False, col)
    return _words_node(parts, ctx, col)


def _words_node(parts: list[str], ctx: str | None, col: int) -> Node:
    if len(parts) == 1:
        return Word(ctx, parts[0], col)
    return Phrase(ctx, tuple(parts), False, col)


def atoms(node: Node) -> Iterator[Atom]:
    """Every atom of a parsed rule (negated ones too), in rule order."""
    if isinstance(node, (And, Or)):
        for child in node.children:
            yield from atoms(child)
    elif isinstance(node, Not):
        yield from atoms(node.child)
    else:
        yield node


def _anchored(node: Node, positive: bool = True) -> bool:
    """True if the rule can only match when at least one of its non-negated atoms is present.

    That excludes `-video` but also `-video OR diffusion`, and it is exactly what lets
    match.py look at only the rules whose atoms occur in a paper.
    """
    if isinstance(node, Not):
        return _anchored(node.child, not positive)
    if isinstance(node, (And, Or)):
        # Under a negation, AND behaves as OR and vice versa (De Morgan).
        need_all = isinstance(node, Or) == positive
        found = (_anchored(c, positive) for c in node.children)
        return all(found) if need_all else any(found)
    return positive


def _check_anchored(node: Node) -> None:
    if _anchored(node):
        return
    if isinstance(node, Or):
        for child in node.children:
            if not _anchored(child):
                raise RuleError(
                    f"only negations at column {child.col}: "
                    "each side of OR needs a word the paper must contain", child.col)
    raise RuleError("rule has only negations: add a word the paper must contain", 1)


def parse(text: str) -> Node:
    """Parse one rule into its AST; raises RuleError naming the problem and its column."""
    if len(text) > MAX_LENGTH:
        raise RuleError(
            f"rule is too long: {len(text)} characters (limit {MAX_LENGTH})", MAX_LENGTH + 1)
    if not text.strip():
        raise RuleError("empty rule")
    node = _Parser(_tokenize(text)).parse()
    _check_anchored(node)
    return node


def validate(text: str) -> None:
    """Raise RuleError if `text` is not a valid rule."""
    parse(text)


# --- evaluation ----------------------------------------------------------------------------


class Fields:
    """A paper's text split the way rules see it: word lists per field, values normalized.

    `author` holds one word list per name so that a phrase never joins two names;
    `title` and `abstract` are separate lists so that a phrase never spans them.
    """

    __slots__ = ("raw_values", "seqs", "values", "vocab")

    def __init__(self, paper: Paper) -> None:
        title, abstract = words(paper.title), words(paper.abstract)
        authors = [words(a) for a in paper.authors]
        self.seqs: dict[str, list[list[str]]] = {
            "title": [title], "abstract": [abstract], "author": authors}
        # Distinct words in order of first occurrence (a dict, so `in` is a hash lookup).
        self.vocab: dict[str, dict[str, None]] = {
            "title": dict.fromkeys(title), "abstract": dict.fromkeys(abstract),
            "author": dict.fromkeys(w for name in authors for w in name)}
        cats = [c for c in paper.categories if c.strip()]
        srcs = [paper.source] if paper.source.strip() else []
        self.raw_values = {"category": cats, "source": srcs}
        self.values = {k: [_normalize_value(v) for v in vs] for k, vs in self.raw_values.items()}


_ANY_FIELDS = ("title", "abstract")


def _atom_fields(atom: Atom) -> tuple[str, ...]:
    return _ANY_FIELDS if atom.field is None else (atom.field,)


def _find_in_seq(atom: Atom, seq: list[str]) -> str | None:
    """The text `atom` matched in one word list (a word or "a phrase"), or None."""
    if isinstance(atom, Word):
        return atom.word if atom.word in seq else None
    if isinstance(atom, Prefix):
        return next((w for w in seq if w.startswith(atom.prefix)), None)
    assert isinstance(atom, Phrase)
    head, last, n = list(atom.words[:-1]), atom.words[-1], len(atom.words)
    for i in range(len(seq) - n + 1):
        w = seq[i + n - 1]
        if seq[i:i + n - 1] == head and (w == last or atom.prefix and w.startswith(last)):
            return '"' + " ".join(seq[i:i + n]) + '"'
    return None


def atom_hits(atom: Atom, fields: Fields) -> tuple[Hit, ...]:
    """Where `atom` occurs in the paper: one Hit per field (the first occurrence in it)."""
    hits: list[Hit] = []
    for name in _atom_fields(atom):
        if isinstance(atom, Value):
            for raw, norm in zip(fields.raw_values[name], fields.values[name]):
                if norm == atom.value or atom.prefix and norm.startswith(atom.value):
                    hits.append(Hit(name, raw))
                    break
            continue
        if isinstance(atom, Word) and atom.word not in fields.vocab[name]:
            continue
        for seq in fields.seqs[name]:
            found = _find_in_seq(atom, seq)
            if found is not None:
                hits.append(Hit(name, found))
                break
    return tuple(hits)


def _evaluate(node: Node, fields: Fields) -> bool:
    if isinstance(node, Not):
        return not _evaluate(node.child, fields)
    if isinstance(node, And):
        return all(_evaluate(c, fields) for c in node.children)
    if isinstance(node, Or):
        return any(_evaluate(c, fields) for c in node.children)
    return bool(atom_hits(node, fields))


def evaluate(node: Node, paper: Paper) -> bool:
    """Does the rule match the paper? The direct, obviously correct evaluation (the reference)."""
    return _evaluate(node, Fields(paper))


def _collect(node: Node, fields: Fields, out: list[Hit]) -> bool:
    # Only parts that are true contribute: for "a OR b" the side that matched, never a
    # negated word (a negation is evidence of absence, nothing to show).
    if isinstance(node, Not):
        return not _evaluate(node.child, fields)
    if isinstance(node, And):
        mark = len(out)
        for child in node.children:
            if not _collect(child, fields, out):
                del out[mark:]
                return False
        return True
    if isinstance(node, Or):
        found = False
        for child in node.children:
            found = _collect(child, fields, out) or found
        return found
    hits = atom_hits(node, fields)
    out.extend(hits)
    return bool(hits)


def explain(node: Node, paper: Paper) -> tuple[Hit, ...]:
    """The words and phrases that made `node` match `paper`, by field; () if it does not match.

    Hits come in rule order, each atom's in field order (title before abstract), the first
    occurrence in each field: a prefix gives the word it matched, a phrase its words in
    quotes, a category or source its value as the paper has it.
    """
    hits: list[Hit] = []
    _collect(node, Fields(paper), hits)
    return tuple(dict.fromkeys(hits))  # the same word found twice: say it once
