"""Turn a Python function's docstring into text an LLM can use as a tool description.

`parse_docstring` splits a docstring into its prose description, per-parameter
descriptions and a description of the return value. Google, NumPy and Sphinx (reST)
styles are recognised automatically; anything it does not understand is left out
rather than raising, because docstrings are written for humans and are often sloppy.
"""

from __future__ import annotations

import inspect
import keyword
import re
from dataclasses import dataclass

__all__ = ["ParsedDocstring", "parse_docstring"]


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    """What `parse_docstring` extracted from one docstring."""

    description: str
    params: dict[str, str]
    returns: str | None


_PARAMS = "params"
_RETURNS = "returns"
_SKIP = "skip"

# Keys are lower-cased with whitespace collapsed: headers match case-insensitively, as in
# Sphinx's napoleon, and stray double spaces in "See  Also" do not hide a section.
_SECTIONS: dict[str, str] = {
    "args": _PARAMS,
    "arguments": _PARAMS,
    "parameters": _PARAMS,
    "params": _PARAMS,
    "keyword args": _PARAMS,
    "keyword arguments": _PARAMS,
    "kwargs": _PARAMS,
    "other parameters": _PARAMS,
    "returns": _RETURNS,
    "return": _RETURNS,
    "raises": _SKIP,
    "yields": _SKIP,
    "yield": _SKIP,
    "examples": _SKIP,
    "example": _SKIP,
    "notes": _SKIP,
    "note": _SKIP,
    "see also": _SKIP,
    "references": _SKIP,
    "warnings": _SKIP,
    "warning": _SKIP,
    "warns": _SKIP,
    "attributes": _SKIP,
    "todo": _SKIP,
    "methods": _SKIP,
    "receives": _SKIP,
}

_SPHINX_PARAM_FIELDS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword"})
_SPHINX_RETURN_FIELDS = frozenset({"returns", "return"})

_DASHES = re.compile(r"-{3,}")
# The whitespace required after the closing colon keeps inline roles such as
# ":math:`x`" at the start of a prose line from being read as fields.
_FIELD = re.compile(r":(?P<field>\w+)(?P<args>[^:]*):(?:\s+|$)(?P<body>.*)")
# The lazy type group still reaches nested parentheses, e.g. "x (tuple(int, int)): ...",
# because the colon after it has to match too.
_GOOGLE_ENTRY = re.compile(r"(?P<name>\*{0,2}[^\W\d]\w*)\s*(?:\(.*?\))?\s*:(?:\s+|$)(?P<desc>.*)")

_Entry = tuple[str, list[str]]


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split `doc` into description, parameter descriptions and return description.

    Never raises: unrecognised parts of the docstring are ignored.
    """
    if not doc or not doc.strip():
        return ParsedDocstring("", {}, None)
    # cleandoc only splits on "\n", so Windows and old-Mac newlines must go first.
    text = inspect.cleandoc(doc.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]

    i = 0
    while i < len(lines) and not _opens_block(lines, i):
        i += 1
    description = inspect.cleandoc("\n".join(lines[:i])).rstrip()

    params: dict[str, str] = {}
    returns: list[str] = []
    while i < len(lines):
        header = _header(lines, i)
        field = None if header else _FIELD.fullmatch(lines[i].strip())
        if header is not None:
            kind, numpy, width = header
            end = _section_end(lines, i, width)
            entries = _entries(lines[i + width : end])
            if kind == _PARAMS:
                params.update(_numpy_params(entries) if numpy else _google_params(entries))
            elif kind == _RETURNS:
                returns.append(_numpy_returns(entries) if numpy else _join(_flatten(entries)))
            i = end
        elif field is not None:
            end = _field_end(lines, i)
            body = _join([field["body"], *lines[i + 1 : end]])
            _apply_field(field["field"].lower(), field["args"].split(), body, params, returns)
            i = end
        else:
            # Stray text after a section has ended (e.g. dedented prose): not ours to place.
            i += 1

    returns_text = _join(returns)
    return ParsedDocstring(description, params, returns_text or None)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _header(lines: list[str], i: int) -> tuple[str, bool, int] | None:
    """Recognise a section header at `lines[i]`: (kind, is_numpy, lines it spans)."""
    stripped = lines[i].strip()
    followed_by_dashes = i + 1 < len(lines) and _DASHES.fullmatch(lines[i + 1].strip())
    if followed_by_dashes:
        kind = _SECTIONS.get(_normalise(stripped.removesuffix(":")))
        if kind is not None:
            return kind, True, 2
    # A Google header is the word and a colon alone on the line, so that prose such as
    # "Returns the sum." or "Note: inline remark" stays prose.
    if stripped.endswith(":"):
        kind = _SECTIONS.get(_normalise(stripped[:-1]))
        if kind is not None:
            return kind, False, 1
    return None


def _normalise(name: str) -> str:
    return " ".join(name.split()).lower()


def _opens_block(lines: list[str], i: int) -> bool:
    return _header(lines, i) is not None or _FIELD.fullmatch(lines[i].strip()) is not None


def _section_end(lines: list[str], start: int, width: int) -> int:
    """Index of the first line after the section whose header is at `lines[start]`."""
    header_indent = _indent(lines[start])
    body = [k for k in range(start + width, len(lines)) if lines[k]]
    # Properly indented bodies (Google, or NumPy written with indented entries) end at
    # the first dedent; flush bodies (NumPy, or sloppy Google) run to the next header.
    indented = bool(body) and _indent(lines[body[0]]) > header_indent
    for k in body:
        if _indent(lines[k]) <= header_indent and (indented or _opens_block(lines, k)):
            return k
    return len(lines)


def _field_end(lines: list[str], start: int) -> int:
    """Index of the first line after the Sphinx field at `lines[start]`."""
    field_indent = _indent(lines[start])
    k = start + 1
    while k < len(lines) and (not lines[k] or _indent(lines[k]) > field_indent):
        k += 1
    return k


def _entries(body: list[str]) -> list[_Entry]:
    """Group a section body into (entry line, continuation lines) by indentation."""
    entries: list[_Entry] = []
    base: int | None = None
    for line in body:
        if not line:
            continue
        indent = _indent(line)
        if base is None:
            base = indent
        if indent <= base or not entries:
            entries.append((line.strip(), []))
        else:
            entries[-1][1].append(line.strip())
    return entries


def _flatten(entries: list[_Entry]) -> list[str]:
    return [part for head, rest in entries for part in (head, *rest)]


def _google_params(entries: list[_Entry]) -> dict[str, str]:
    params: dict[str, str] = {}
    name: str | None = None
    for head, rest in entries:
        match = _GOOGLE_ENTRY.fullmatch(head)
        if match is not None:
            name = match["name"].lstrip("*")
            params[name] = _join([match["desc"], *rest])
        elif name is not None:
            # A wrapped line that lost its indentation still belongs to the entry above.
            params[name] = _join([params[name], head, *rest])
    return params


def _numpy_params(entries: list[_Entry]) -> dict[str, str]:
    params: dict[str, str] = {}
    names: list[str] = []
    for head, rest in entries:
        candidates = [n.strip().lstrip("*") for n in head.partition(":")[0].split(",")]
        if all(_is_name(n) for n in candidates):
            names = candidates
            params.update(dict.fromkeys(names, _join(rest)))
        else:
            for name in names:
                params[name] = _join([params[name], head, *rest])
    return params


def _is_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _numpy_returns(entries: list[_Entry]) -> str:
    # "name : type" lines are only labels for the indented text under them, and the
    # indented text is what helps a model; a bare label is kept when nothing is under it.
    return _join([_join(rest) if rest else head for head, rest in entries])


def _apply_field(
    field: str, args: list[str], body: str, params: dict[str, str], returns: list[str]
) -> None:
    if field in _SPHINX_PARAM_FIELDS and args:
        # ":param int x:" puts the type before the name, so the name is the last word.
        name = args[-1].lstrip("*")
        if _is_name(name):
            params[name] = body
    elif field in _SPHINX_RETURN_FIELDS:
        returns.append(body)
