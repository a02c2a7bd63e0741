"""Macros an abstract defines for itself (`\\newcommand{\\R}{\\mathbb{R}}`, `\\def\\eps{...}`):
the definitions go, and each use is replaced by what it stands for before the text is
converted (pylatexenc reads a macro it does not know as nothing: "We propose \\method{}"
would lose the method's name)."""

from __future__ import annotations

import re

# \newcommand, \renewcommand, \providecommand (starred or not), \DeclareMathOperator, \def
_DEFINITION = re.compile(
    r"\\(?:(?P<cmd>(?:re)?newcommand|providecommand|DeclareRobustCommand)\*?"
    r"|(?P<op>DeclareMathOperator)\*?|(?P<def>[egx]?def))(?![A-Za-z])\s*")
_NAME = re.compile(r"\{\s*(\\(?:[A-Za-z@]+|.))\s*\}|(\\(?:[A-Za-z@]+|.))")
_ARGS = re.compile(r"\s*\[\s*(\d)\s*\]")
_DEFAULT = re.compile(r"\s*\[([^\]]*)\]")
_PARAMS = re.compile(r"(?:#\d)*")
_CONTROL = re.compile(r"\\(?:[A-Za-z@]+|.)")  # a control word or a control symbol
_CONTROL_WORD = re.compile(r"\\[A-Za-z@]+")
HINT = re.compile(r"\\(?:(?:re)?newcommand|providecommand|DeclareRobustCommand|"
                  r"DeclareMathOperator|[egx]?def)(?![A-Za-z])")
# an expansion may not make the text more than this much longer (a definition that uses
# itself, or one that doubles at every level, must not run away on hostile input)
MAX_GROWTH = 4
PASSES = 8


def _group(text: str, at: int) -> int | None:
    """The index after the balanced {...} that starts at `at`, None when it never closes."""
    if at >= len(text) or text[at] != "{":
        return None
    depth, i = 0, at
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _definitions(text: str) -> tuple[str, dict[str, tuple[int, str | None, str]]]:
    """(`text` without its definitions, name -> (number of arguments, the first one's
    default or None, body)). A definition that does not parse is left as it is."""
    found: dict[str, tuple[int, str | None, str]] = {}
    out, last = [], 0
    for m in _DEFINITION.finditer(text):
        if m.start() < last:  # inside a definition already taken
            continue
        name_m = _NAME.match(text, m.end())
        if name_m is None:
            continue
        name = name_m[1] or name_m[2]
        at, nargs, default = name_m.end(), 0, None
        if m["def"]:
            params = _PARAMS.match(text, at)
            nargs, at = params[0].count("#"), params.end()
        elif m["cmd"] and (args := _ARGS.match(text, at)):
            nargs, at = int(args[1]), args.end()
            if default_m := _DEFAULT.match(text, at):
                default, at = default_m[1], default_m.end()
        while at < len(text) and text[at].isspace():
            at += 1
        end = _group(text, at)
        if end is None:
            continue
        body = text[at + 1:end - 1]
        if m["op"]:
            body = f"\\operatorname{{{body}}}"
        found[name] = (nargs, default, body)
        out.append(text[last:m.start()])
        last = end
    out.append(text[last:])
    return "".join(out), found


def _used(name: str) -> str:
    """The pattern of a use of macro `name`: a control word (\\method) ends where its
    letters do, a control symbol (\\,) is its one character."""
    return re.escape(name) + ("(?![A-Za-z@])" if _CONTROL_WORD.fullmatch(name) else "")


def _argument(text: str, at: int) -> tuple[str, int] | None:
    """(one macro argument: a {group}'s content or one token, the index after it)."""
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        return None
    if text[at] == "{":
        end = _group(text, at)
        return (text[at + 1:end - 1], end) if end is not None else None
    if text[at] == "\\":
        m = _CONTROL.match(text, at)
        return (m[0], m.end()) if m else None
    return text[at], at + 1


def _expand_once(text: str, macros: dict[str, tuple[int, str | None, str]],
                 use: re.Pattern) -> str:
    out, last = [], 0
    for m in use.finditer(text):
        if m.start() < last:
            continue
        nargs, default, body = macros[m[0]]
        at, args = m.end(), []
        if nargs and default is not None:
            opt = _DEFAULT.match(text, at)
            args.append(opt[1] if opt else default)
            at = opt.end() if opt else at
        while len(args) < nargs:
            got = _argument(text, at)
            if got is None:
                break
            args.append(got[0])
            at = got[1]
        if len(args) < nargs:  # used without its arguments: left as written
            continue
        for k, arg in enumerate(args, 1):
            body = body.replace(f"#{k}", arg)
        if not nargs and text.startswith("{}", at):  # "\method{}": the braces end the name
            at += 2
        # a group keeps the expansion one unit ("\R^n" -> "{\mathbb{R}}^n")
        out += [text[last:m.start()], "{", body, "}"]
        last = at
    out.append(text[last:])
    return "".join(out)


def expand_definitions(text: str) -> str:
    """`text` with the macros it defines expanded and their definitions gone, e.g.
    `\\newcommand{\\R}{\\mathbb{R}} $f:\\R^n$` -> ` $f:{\\mathbb{R}}^n$`. Macros with
    arguments (`[2]`, `#1#2`, a default for the first) take them as TeX does (a group or
    one token). Expansion stops after PASSES rounds, or where the text would grow past
    MAX_GROWTH times its length (the rest is left as written). Never raises."""
    if not HINT.search(text):
        return text
    try:
        stripped, macros = _definitions(text)
        # one that uses itself (\def\a{\a\a}) never ends in TeX either: left as written
        macros = {name: m for name, m in macros.items() if not re.search(_used(name), m[2])}
        if not macros:
            return stripped
        names = sorted(macros, key=len, reverse=True)
        use = re.compile("|".join(map(_used, names)))
        limit = MAX_GROWTH * len(text) + 1000
        for _ in range(PASSES):
            expanded = _expand_once(stripped, macros, use)
            if len(expanded) > limit:
                break
            if expanded == stripped:
                break
            stripped = expanded
        return stripped
    except Exception:  # noqa: BLE001 (hostile TeX: the text as it was)
        return text
