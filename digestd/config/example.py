"""config.example.toml, generated from the declared settings (`digestd config example`)."""

import sys
from typing import Any

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass


from .checks import duration_text
from .schema import SECTIONS, SourceConfig, settings, toml_key

# -- the example file --------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str, width: int = 92) -> list[str]:
    import textwrap
    return ["# " + line for line in textwrap.wrap(text, width)]


# tables that are off until they are written: why, said above the commented-out table
OPTIONAL_SECTIONS = {
    "smtp": "With an [smtp] table (and delivery.method left empty) digests go out over SMTP; "
            "without one they are written as .eml files into delivery.outbox_dir. Remove "
            "the # before [smtp] and the settings you change to send mail.",
}

EXAMPLE_SOURCES = (
    {"name": "arxiv-ml", "kind": "arxiv-rss", "categories": ("cs.LG", "stat.ML")},
    {"name": "arxiv-diffusion", "kind": "arxiv-api", "query": "cat:cs.LG AND abs:diffusion",
     "max_results": 100},
    {"name": "hf", "kind": "hf-daily"},
    {"name": "biorxiv", "kind": "biorxiv", "days": 2},
    {"name": "nature-ml", "kind": "feed", "url": "https://www.nature.com/natmachintell.rss"},
)


def example_config() -> str:
    """The text of config.example.toml, generated from the declarations above."""
    out = ["# digestd configuration. Every setting is shown with its default.",
           "# Relative paths are relative to this file. Check it with: digestd config check",
           "# Secrets (SMTP password, link-signing secret) never need to be written here.", ""]
    for section, cls in SECTIONS.items():
        # a table whose presence changes what digestd does is shown commented out, so a
        # copy of this file behaves as no file at all does
        off = "#" if section in OPTIONAL_SECTIONS else ""
        if off:
            out.extend(_comment(OPTIONAL_SECTIONS[section]))
        out.append(f"{off}[{section}]")
        for f in settings(cls):
            out.extend(_comment(f.metadata["help"]))
            value = duration_text(f.default) if f.metadata.get("duration") else f.default
            out.append(f"{off}{toml_key(f)} = {_toml_value(value)}")
        out.append("")
    out.extend(_comment("Paper sources: one [[sources]] table each. Settings for every kind:"))
    for f in settings(SourceConfig):
        kinds = f.metadata["kinds"]
        scope = f" [{', '.join(kinds)}]" if kinds else ""
        out.extend(_comment(f"{toml_key(f)}{scope}: {f.metadata['help']}"))
        if f.metadata["choices"]:
            out.extend(_comment(f"  one of: {', '.join(f.metadata['choices'])}"))
    for example in EXAMPLE_SOURCES:
        out.append("")
        out.append("[[sources]]")
        for key, value in example.items():
            out.append(f"{key} = {_toml_value(value)}")
    return "\n".join(out) + "\n"
