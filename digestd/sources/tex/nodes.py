"""Passes over pylatexenc's node list before it is printed: scripts kept together in a
_SCRIPT macro (_group_scripts), and the spaces around signs, brackets and operator names
as TeX prints them (_space_signs)."""

from __future__ import annotations

from pylatexenc import latexwalker, macrospec

from .macros import _OPERATORS, _RENDER_CONTEXT, _SCRIPT, _TEXT_ARGS, _prints_word, _word_after


# brackets are no signs: "\langle x\rangle" is "⟨x⟩"
_DELIMITERS = frozenset(("langle", "rangle", "lceil", "rceil", "lfloor", "rfloor", "lvert",
                         "rvert", "lVert", "rVert", "vert", "Vert", "lbrack", "rbrack"))
# signs that stand before their operand as a letter does: "\\partial f" is ∂f, "\\nabla f" ∇f
_PREFIXES = frozenset(("partial", "nabla"))
# a sign after these has a space on its left as the author wrote it: "$\\sim 100$" is ∼ 100
_SPACED = frozenset(" \t\n$_^{(")


def _space_signs(nodes: list, math: bool = False) -> None:
    """In math, a relation or an operator sign (\\le, \\sim, \\times) is spaced alike on both
    sides, as the author spaced its left: "a \\le b" is "a ≤ b", "a\\le b" "a≤b" (pylatexenc
    printed "a≤ b") and "x \\in \\mathbb{R}" "x ∈ ℝ" (it printed "x ∈ℝ"). An operator name
    spaces itself (_operator); a letter (\\sigma v) keeps the author's space, and a sign before
    its operand none after it ("\\partial f" is "∂f")."""
    out = []
    quiet = set()  # (ids of) delimiters whose space after them is not printed: "\rangle \le"
    for node in nodes:
        out.append(node)
        if node is None:
            continue
        if not node.isNodeType(latexwalker.LatexMacroNode):
            if getattr(node, "nodelist", None):
                _space_signs(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))
        elif node.nodeargd is not None and getattr(node.nodeargd, "argnlist", None):
            # a script is math, written with dollars or not ("R^{n \\times d}")
            _space_signs(node.nodeargd.argnlist, math or node.macroname == _SCRIPT)
            last = node.nodeargd.argnlist[-1]
            if math and last is not None and last.isNodeType(latexwalker.LatexMacroNode) and (
                    last.macro_post_space and _prints_word(last.macroname)):
                # the author's space after an argument without braces, "\\hat\\theta - x",
                # which pylatexenc drops with the argument's: "θ̂ - x"
                out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                      pos=node.pos + node.len, len=0))
        elif math and node.macro_post_space:
            if node.macroname in _OPERATORS or node.macroname in _DELIMITERS:
                node.macro_post_space = ""
                quiet.add(id(node))
            elif not _prints_word(node.macroname) and node.macroname != "colon":
                before = out[-2] if len(out) > 1 else None
                if node.pos and node.parsing_state.s[node.pos - 1].isspace() and \
                        before is not None and (
                            before.isNodeType(latexwalker.LatexMacroNode)
                            and (before.macro_post_space or id(before) in quiet)
                            or before.isNodeType(latexwalker.LatexCharsNode)
                            and before.chars.isspace()):
                    # "\mu \to": the space after \mu is not printed, nor "} \approx"'s
                    # alone between two nodes; the one before \to is
                    out.insert(len(out) - 1, latexwalker.LatexMacroNode(
                        " ", parsing_state=node.parsing_state, pos=node.pos, len=0))
                prefix = node.macroname in _PREFIXES and _word_after(node.parsing_state.s,
                                                                     node.pos + node.len)
                if not prefix and (not node.pos or node.parsing_state.s[node.pos - 1] in _SPACED):
                    # pylatexenc prints the space only before plain characters; "\\ " always
                    out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                          pos=node.pos + node.len, len=0))
                node.macro_post_space = ""
        elif not math and node.macro_post_space and _text_symbol(node.macroname):
            # in running text a sign keeps the space after it that TeX eats: "Smith\\dag and
            # Jones" is "Smith† and Jones", "\\copyright 2024" "© 2024"; a letter does not
            # ("S\\o rensen" is Sørensen)
            out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                  pos=node.pos + node.len, len=0))
    nodes[:] = out


# what a control word prints that joins the word after it in running text, as TeX has it:
# dashes, quotes and a section's sign ("1\\textendash 2" is 1–2, "\\S 3" §3)
_JOINING = frozenset("–—‘’“”'\"-§¶")


def _text_symbol(name: str) -> bool:
    """Whether the control word `name` prints a sign, not a letter, a word, a dash or
    nothing (\\dag, \\S, \\copyright, \\textbullet)."""
    spec = _RENDER_CONTEXT.get_macro_spec(name)
    repl = spec.simplify_repl if spec is not None else None
    return isinstance(repl, str) and repl.strip() != "" and "%" not in repl and not (
        repl[-1].isalnum() or repl[-1] in _JOINING)


# \\left( and \\bigl(, \\right) and \\bigr) (and closing brackets): in math TeX prints no space
# just inside them
_OPENERS = frozenset(("left", "bigl", "Bigl", "biggl", "Biggl"))
_CLOSERS = frozenset(("right", "bigr", "Bigr", "biggr", "Biggr", "rangle", "rceil", "rfloor",
                      "rvert", "rVert", "}", "rbrack"))
# ... nor just inside a set's braces: "\{ x : x > 0 \}" is {x : x > 0}
_OPEN_BRACKETS = frozenset(("{", "langle", "lceil", "lfloor", "lvert", "lVert", "lbrack"))


def _macro(nodes: list, i: int, names: frozenset = frozenset()) -> bool:
    """Whether nodes[i] is a macro (one of `names`, if given)."""
    node = nodes[i] if 0 <= i < len(nodes) else None
    return node is not None and node.isNodeType(latexwalker.LatexMacroNode) and (
        not names or node.macroname in names)


def _script_node(after):
    """The node `after` a ^ or _ in a _SCRIPT macro, which prints it as a script (_script)."""
    return latexwalker.LatexMacroNode(
        _SCRIPT, nodeargd=macrospec.ParsedMacroArgs(argspec="{", argnlist=[after]),
        # (its control word's space, which _space_signs looks at: "\\mu \\to")
        macro_post_space=getattr(after, "macro_post_space", ""),
        parsing_state=after.parsing_state, pos=after.pos, len=after.len)


def _text_script(nodes: list, i: int) -> bool:
    """Whether the characters nodes[i], outside math, end in a ^ or _ written right after
    a letter, a digit or a bracket and right before a brace group: TeX's script, written
    without the dollars ("n^{1/3}", "T_{c}"), not a "_" in running text ("a_b", "my_var")."""
    node, after = nodes[i], nodes[i + 1] if i + 1 < len(nodes) else None
    if after is None or node.chars[-1:] not in ("^", "_") or not (
            after.isNodeType(latexwalker.LatexGroupNode) and after.delimiters[0] == "{"):
        return False
    caret = node.pos + len(node.chars) - 1
    s = node.parsing_state.s
    # (a group never closed runs to the end of the text: that is no script)
    return after.pos == caret + 1 and caret > 0 and not s[caret - 1].isspace() and s[
        after.pos + after.len - 1:after.pos + after.len] == "}"


def _group_scripts(nodes: list, math: bool = False) -> None:
    """In math, a script that is a group or a control word ("n^{1/3}", "\\nabla_\\theta") is
    put in a _SCRIPT macro, which keeps it together (pylatexenc printed "n^1/3"), and so is
    a group after a ^ or _ in running text (_text_script: "n^{1/3}" without dollars); and the
    author's spaces just inside \\left( ... \\right) go on both sides (it printed "( a/b)")."""
    for i, node in enumerate(nodes):
        if node is None:
            continue
        if node.isNodeType(latexwalker.LatexCharsNode):
            if not math:
                if _text_script(nodes, i):
                    nodes[i + 1] = _script_node(nodes[i + 1])
                continue
            if _macro(nodes, i - 1, _OPENERS):  # "\\left( x"
                node.chars = node.chars[:1] + node.chars[1:].lstrip()
            elif _macro(nodes, i - 2, _OPENERS) and _macro(nodes, i - 1) or _macro(
                    nodes, i - 1, _OPEN_BRACKETS):  # "\\left\\{ x", "\\{ x"
                node.chars = node.chars.lstrip()
            after = nodes[i + 1] if i + 1 < len(nodes) else None
            if after is None:
                continue
            if _macro(nodes, i + 1, _CLOSERS):
                node.chars = node.chars.rstrip()
            elif node.chars.rstrip()[-1:] in ("^", "_") and (
                    after.isNodeType(latexwalker.LatexGroupNode) and after.delimiters[0] == "{"
                    or after.isNodeType(latexwalker.LatexMacroNode)):
                node.chars = node.chars.rstrip()  # "x^ {a+b}" is x^(a+b)
                nodes[i + 1] = _script_node(after)
        elif node.isNodeType(latexwalker.LatexMacroNode):
            if node.nodeargd is not None and getattr(node.nodeargd, "argnlist", None):
                _group_scripts(node.nodeargd.argnlist, math and node.macroname not in _TEXT_ARGS)
        elif getattr(node, "nodelist", None):
            _group_scripts(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))
