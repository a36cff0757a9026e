"""Low-level scanners shared by every header parser.

RFC 3261 §25.1 builds most header values from the same few pieces: tokens, quoted strings,
``;name=value`` parameter lists and comma-separated lists whose commas may hide inside a
quoted display name or an ``<...>`` URI.  Keeping these scanners in one place means one set of
bugs, and one place to make fast.

Strategy: every scanner first tries the common case with C-speed ``str`` methods (no quote,
no angle bracket) and only falls back to a character loop when the value needs it.
"""

from __future__ import annotations

from ..errors import ParseError

__all__ = [
    "TOKEN_CHARS",
    "WORD_CHARS",
    "is_token",
    "split_commas",
    "first_comma",
    "split_params",
    "unquote",
    "quote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#           "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')


def is_token(text: str) -> bool:
    """True if *text* is a non-empty RFC 3261 token."""
    return bool(text) and TOKEN_CHARS.issuperset(text)


def _special_positions(value: str, sep: str) -> list[int]:
    """Indexes of *sep* that are outside quoted strings and ``<...>``.

    Raises ParseError on an unterminated quoted string or angle bracket, because a
    lenient split there would silently merge or cut header values.
    """
    positions: list[int] = []
    in_quote = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1  # quoted-pair: skip the escaped character
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif in_angle:
            if ch == ">":
                in_angle = False
        elif ch == "<":
            in_angle = True
        elif ch == sep:
            positions.append(i)
        i += 1
    if in_quote:
        raise ParseError(f"unterminated quoted string in {value[:60]!r}")
    if in_angle:
        raise ParseError(f"unterminated '<' in {value[:60]!r}")
    return positions


def split_commas(value: str) -> list[str]:
    """Split a list header value at top-level commas, stripping LWS around elements.

    Empty elements are a protocol error: RFC 3261 lists (``*(COMMA x)``) have none.
    """
    if '"' not in value and "<" not in value:
        parts = [p.strip(" \t") for p in value.split(",")]
    else:
        cuts = _special_positions(value, ",")
        parts = []
        start = 0
        for cut in cuts:
            parts.append(value[start:cut].strip(" \t"))
            start = cut + 1
        parts.append(value[start:].strip(" \t"))
    if "" in parts:
        raise ParseError(f"empty element in list {value[:60]!r}")
    return parts


def first_comma(value: str) -> int:
    """Index of the first top-level comma in *value*, or -1."""
    if '"' not in value and "<" not in value:
        return value.find(",")
    cuts = _special_positions(value, ",")
    return cuts[0] if cuts else -1


def split_params(text: str) -> list[tuple[str, str | None]]:
    """Parse ``;name[=value]`` pairs (the text after the first ``;``, or starting with it).

    Names keep their spelling (comparison is the caller's job, usually case-insensitive);
    values keep their quotes so that re-serialisation is lossless.  LWS around ``;`` and
    ``=`` is allowed (RFC 3261 SEMI and EQUAL).
    """
    if not text:
        return []
    if text.startswith(";"):
        text = text[1:]
    if not text.strip(" \t"):
        raise ParseError("empty parameter")
    if '"' in text:
        cuts = _special_positions(text, ";")
        pieces = []
        start = 0
        for cut in cuts:
            pieces.append(text[start:cut])
            start = cut + 1
        pieces.append(text[start:])
    else:
        pieces = text.split(";")
    result: list[tuple[str, str | None]] = []
    for piece in pieces:
        name, eq, val = piece.partition("=")
        name = name.strip(" \t")
        if not name or not is_token(name):
            raise ParseError(f"bad parameter name {name!r}")
        if eq:
            val = val.strip(" \t")
            if not val:
                raise ParseError(f"parameter {name!r} has an empty value")
            if val[0] == '"':
                if len(val) < 2 or val[-1] != '"' or val.endswith('\\"') and not val.endswith('\\\\"'):
                    raise ParseError(f"bad quoted value for parameter {name!r}")
            elif not _param_value_ok(val):
                raise ParseError(f"bad value for parameter {name!r}: {val!r}")
            result.append((name, val))
        else:
            result.append((name, None))
    return result


# gen-value = token / host / quoted-string; host adds ":" and "[" "]" for IPv6 references.
_PARAM_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")


def _param_value_ok(val: str) -> bool:
    return _PARAM_VALUE_CHARS.issuperset(val)


def unquote(text: str) -> str:
    """Return the content of a quoted-string, resolving quoted-pairs.

    Text that is not quoted is returned unchanged, so callers can pass any gen-value.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            i += 1
            ch = inner[i]
        out.append(ch)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Render *text* as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
