import dataclasses
import random

import pytest

from agentkit.tools.docstrings import ParsedDocstring, parse_docstring

EMPTY = ParsedDocstring("", {}, None)


# --- empty and plain input ---------------------------------------------------


@pytest.mark.parametrize("doc", [None, "", "   ", "\n\n", " \t\r\n "])
def test_empty_docstring(doc: str | None) -> None:
    assert parse_docstring(doc) == EMPTY


def test_summary_and_extended_description() -> None:
    doc = """Add two numbers.

    The extended description
    spans lines.

    """
    assert parse_docstring(doc) == ParsedDocstring(
        "Add two numbers.\n\nThe extended description\nspans lines.", {}, None
    )


def test_parsed_docstring_is_frozen() -> None:
    parsed = parse_docstring("Hi.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.description = "changed"  # type: ignore[misc]


def test_real_function_docstring() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: First.
            b: Second.

        Returns:
            The sum.
        """
        return a + b

    assert parse_docstring(add.__doc__) == ParsedDocstring(
        "Add two numbers.", {"a": "First.", "b": "Second."}, "The sum."
    )


# --- Google ------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Args", "Arguments", "Parameters", "Params"])
def test_google_param_headers(header: str) -> None:
    doc = f"Summary.\n\n{header}:\n    x: The x.\n    y: The y.\n"
    assert parse_docstring(doc) == ParsedDocstring("Summary.", {"x": "The x.", "y": "The y."}, None)


@pytest.mark.parametrize(
    ("entry", "name", "desc"),
    [
        ("x: The x.", "x", "The x."),
        ("x (int): The x.", "x", "The x."),
        ("x (int, optional): The x.", "x", "The x."),
        ("x (tuple(int, int)): A pair.", "x", "A pair."),
        ("x (Callable[[int], str]): Maps: ints to str.", "x", "Maps: ints to str."),
        ("*args: Extra positionals.", "args", "Extra positionals."),
        ("**kwargs (Any): Extra keywords.", "kwargs", "Extra keywords."),
        ("x:", "x", ""),
    ],
)
def test_google_entry_forms(entry: str, name: str, desc: str) -> None:
    assert parse_docstring(f"Args:\n    {entry}\n").params == {name: desc}


def test_google_multiline_descriptions() -> None:
    doc = """Summary.

    Args:
        path (str): Where the file
            lives on   disk.

            Second paragraph.
        mode:
            Description that starts
            on the next line.

    Returns:
        bool: True if
            it worked.
    """
    parsed = parse_docstring(doc)
    assert parsed.params == {
        "path": "Where the file lives on disk. Second paragraph.",
        "mode": "Description that starts on the next line.",
    }
    assert parsed.returns == "bool: True if it worked."


@pytest.mark.parametrize("header", ["Keyword Args", "Kwargs", "Keyword Arguments"])
def test_google_keyword_sections_go_into_params(header: str) -> None:
    doc = f"Summary.\n\nArgs:\n    a: A.\n\n{header}:\n    verbose (bool): Talk more.\n"
    assert parse_docstring(doc).params == {"a": "A.", "verbose": "Talk more."}


@pytest.mark.parametrize("header", ["Returns", "Return"])
def test_google_returns_headers(header: str) -> None:
    doc = f"Summary.\n\n{header}:\n    The answer,\n    always 42.\n"
    assert parse_docstring(doc).returns == "The answer, always 42."


@pytest.mark.parametrize(
    "header",
    [
        "Raises",
        "Yields",
        "Examples",
        "Example",
        "Notes",
        "Note",
        "See Also",
        "References",
        "Warnings",
        "Warning",
        "Attributes",
        "Todo",
    ],
)
def test_google_skipped_sections(header: str) -> None:
    doc = f"""Summary.

    {header}:
        ignored: Not a parameter.
        Returns: still ignored.

    Args:
        x: The x.
    """
    assert parse_docstring(doc) == ParsedDocstring("Summary.", {"x": "The x."}, None)


def test_google_header_is_case_and_space_insensitive() -> None:
    doc = "Summary.\n\nARGS :\n    x: The x.\n\nsee   also:\n    y: not a param\n"
    assert parse_docstring(doc) == ParsedDocstring("Summary.", {"x": "The x."}, None)


def test_google_unindented_entries_still_parse() -> None:
    doc = "Summary.\n\nArgs:\nx: The x.\ny: The y\nwrapped.\n\nReturns:\nNothing.\n"
    assert parse_docstring(doc) == ParsedDocstring(
        "Summary.", {"x": "The x.", "y": "The y wrapped."}, "Nothing."
    )


def test_google_section_ends_at_dedent() -> None:
    doc = "Summary.\n\nArgs:\n    x: The x.\nTrailing prose.\n"
    assert parse_docstring(doc) == ParsedDocstring("Summary.", {"x": "The x."}, None)


# --- NumPy -------------------------------------------------------------------


def test_numpy_full() -> None:
    doc = """
    Compute a thing.

    Longer text.

    Parameters
    ----------
    x : int
        The x value
        over two lines.
    label : str, optional
        A label.
    flag
        No type given.
    *args : Any
        Extras.

    Returns
    -------
    int
        The result.
    """
    assert parse_docstring(doc) == ParsedDocstring(
        "Compute a thing.\n\nLonger text.",
        {
            "x": "The x value over two lines.",
            "label": "A label.",
            "flag": "No type given.",
            "args": "Extras.",
        },
        "The result.",
    )


def test_numpy_several_names_share_a_description() -> None:
    doc = "Summary.\n\nParameters\n---\nx, y, *z : float\n    Coordinates.\nw : int\n    W.\n"
    assert parse_docstring(doc).params == {
        "x": "Coordinates.",
        "y": "Coordinates.",
        "z": "Coordinates.",
        "w": "W.",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("int\n    The count.\n", "The count."),
        ("total : int\n    The total\n    sum.\n", "The total sum."),
        ("int\n", "int"),
        ("a : int\n    First.\nb : str\n    Second.\n", "First. Second."),
    ],
)
def test_numpy_returns(body: str, expected: str) -> None:
    assert parse_docstring(f"Summary.\n\nReturns\n-------\n{body}").returns == expected


@pytest.mark.parametrize(
    "header",
    [
        "Raises",
        "Yields",
        "Examples",
        "Notes",
        "See Also",
        "References",
        "Warnings",
        "Attributes",
        "Todo",
    ],
)
def test_numpy_skipped_sections(header: str) -> None:
    doc = f"""Summary.

    Parameters
    ----------
    x : int
        The x.

    {header}
    {"-" * len(header)}
    y : int
        Not a parameter.
    """
    assert parse_docstring(doc) == ParsedDocstring("Summary.", {"x": "The x."}, None)


def test_numpy_header_with_colon_and_short_dashes() -> None:
    doc = "Summary.\n\nParameters:\n---\nx : int\n    The x.\n"
    assert parse_docstring(doc).params == {"x": "The x."}


def test_numpy_prose_line_in_section_continues_previous_entry() -> None:
    doc = "Parameters\n----------\nx : int\n    The x.\nbadly indented text\n"
    assert parse_docstring(doc).params == {"x": "The x. badly indented text"}


# --- Sphinx ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        ":param x:",
        ":param int x:",
        ":param Dict[str, int] x:",
        ":parameter x:",
        ":arg x:",
        ":argument x:",
        ":key x:",
        ":keyword x:",
        ":param **x:",
    ],
)
def test_sphinx_param_fields(field: str) -> None:
    assert parse_docstring(f"Summary.\n\n{field} The x.\n").params == {"x": "The x."}


def test_sphinx_full() -> None:
    doc = """Fetch a URL.

    Follows redirects.

    :param url: The address
        to fetch.
    :type url: str
    :param int timeout: Seconds to wait.
    :raises ValueError: On a bad URL.
    :returns: The body,
        decoded.
    :rtype: str
    """
    assert parse_docstring(doc) == ParsedDocstring(
        "Fetch a URL.\n\nFollows redirects.",
        {"url": "The address to fetch.", "timeout": "Seconds to wait."},
        "The body, decoded.",
    )


@pytest.mark.parametrize("field", [":return:", ":returns:"])
def test_sphinx_return_fields(field: str) -> None:
    assert parse_docstring(f"Summary.\n{field} Nothing useful.\n:rtype: None\n").returns == (
        "Nothing useful."
    )


def test_sphinx_field_description_on_following_lines() -> None:
    doc = "Summary.\n\n:param x:\n    Starts on\n\n    the next line.\n:type x: int\n"
    assert parse_docstring(doc).params == {"x": "Starts on the next line."}


def test_sphinx_type_and_rtype_alone_document_nothing() -> None:
    assert parse_docstring("Summary.\n\n:type x: int\n:rtype: int\n") == ParsedDocstring(
        "Summary.", {}, None
    )


def test_sphinx_role_at_line_start_is_prose() -> None:
    doc = "Summary.\n:math:`x^2` grows fast.\n\n:param x: The x.\n"
    assert parse_docstring(doc) == ParsedDocstring(
        "Summary.\n:math:`x^2` grows fast.", {"x": "The x."}, None
    )


# --- prose that looks like a header -------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        "Returns the sum of a and b.",
        "Returns the sum of a and b.\n\nParameters are checked first.",
        "Summary.\n\nReturns\nthe sum, but no dashes follow.",
        "Summary.\n\nNote: this inline note stays in the description.",
        "Summary.\n\nExample usage: add(1, 2).",
        "Summary.\n\nOverview\n--------\nA reST heading that is not a section.",
        "Summary.\n\nThe args: a and b.",
    ],
)
def test_prose_that_looks_like_a_header(doc: str) -> None:
    assert parse_docstring(doc) == ParsedDocstring(doc, {}, None)


def test_returns_summary_line_with_real_sections() -> None:
    doc = "Returns the sum of a and b.\n\nArgs:\n    a: A.\n    b: B.\n\nReturns:\n    The sum.\n"
    assert parse_docstring(doc) == ParsedDocstring(
        "Returns the sum of a and b.", {"a": "A.", "b": "B."}, "The sum."
    )


# --- whitespace robustness -----------------------------------------------------

GOOGLE = ParsedDocstring("Summary.\n\nMore.", {"x": "The x over lines."}, "Nothing.")


@pytest.mark.parametrize(
    "doc",
    [
        "Summary.\n\nMore.\n\nArgs:\n    x: The x\n        over lines.\n\nReturns:\n    Nothing.\n",
        "Summary.\r\n\r\nMore.\r\n\r\nArgs:\r\n    x: The x\r\n        over lines.\r\n\r\n"
        "Returns:\r\n    Nothing.\r\n",
        "Summary.\r\rMore.\r\rArgs:\r    x: The x\r        over lines.\r\rReturns:\r    Nothing.\r",
        "Summary.\n\n\tMore.\n\n\tArgs:\n\t\tx: The x\n\t\t\tover lines.\n\n"
        "\tReturns:\n\t\tNothing.\n",
        "\n    Summary.\n\n    More.\n\n    Args:\n        x: The x\n            over lines.\n\n"
        "    Returns:\n        Nothing.\n    ",
        "   Summary.\n\n      More.\n\n      Args:\n          x: The x\n            over lines.\n"
        "      Returns:\n        Nothing.\n",
    ],
    ids=["plain", "crlf", "cr", "tabs", "starts-next-line", "odd-indent"],
)
def test_whitespace_variants(doc: str) -> None:
    assert parse_docstring(doc) == GOOGLE


def test_description_keeps_relative_indentation() -> None:
    doc = "Summary.\n\n    Example block:\n        indented code\n\nArgs:\n    x: The x.\n"
    assert parse_docstring(doc).description == "Summary.\n\nExample block:\n    indented code"


# --- fuzz ----------------------------------------------------------------------

FRAGMENTS = [
    "Args:",
    "Returns:",
    "Parameters",
    "----------",
    "---",
    "Raises:",
    "See Also",
    "Notes",
    "x : int",
    "a, b : float",
    ", : ,",
    "x (int): desc",
    "*args:",
    "**:",
    "(",
    "):",
    ":param x: y",
    ":param:",
    ":returns:",
    ":rtype: int",
    ":",
    "::",
    "Returns the sum.",
    "\t",
    "    ",
    "\r\n",
    "\r",
    "\n",
    "\x0c",
    "\u2028",
    "é: ü",
    "None : int",
    "",
]


def test_fuzz_never_raises_and_keeps_invariants() -> None:
    rng = random.Random(20240601)
    for _ in range(2000):
        parts = rng.choices(FRAGMENTS, k=rng.randint(0, 25))
        seps = rng.choices(["\n", "\n    ", "\n        ", " ", ""], k=len(parts))
        doc = "".join(p + s for p, s in zip(parts, seps, strict=True))
        parsed = parse_docstring(doc)
        assert isinstance(parsed, ParsedDocstring)
        assert parsed.description == parsed.description.rstrip()
        for name, desc in parsed.params.items():
            assert name.isidentifier(), (doc, name)
            assert desc == " ".join(desc.split()), (doc, desc)
        if parsed.returns is not None:
            assert parsed.returns
            assert parsed.returns == " ".join(parsed.returns.split()), doc
