"""Telephone numbers between trunks: from what a party dialled to E.164 and back.

Every trunk speaks its own dialect.  A PBX sends ``030 1234567`` or ``9+4930...`` (an
outside-line digit), a dialer sends ``004930...``, one carrier wants ``+4930...`` and
another ``4930...`` behind a tech prefix ``1234#``.  Routing, rating, ACLs and call records
all need one form, so sipline turns every number into E.164 (ITU-T E.164: ``+``, country
code, national significant number) as it enters and into the carrier's form as it leaves:

    dialled --strip prefixes--> digits --national/international rules--> +E.164
    +E.164 --format (e164 / e164-noplus / national)--> --add prefix--> sent

The core holds the rules as data (:class:`NumberPlan`, :class:`NumberFormat`) and a simple,
predictable fallback for the national/international step: the international prefix becomes
``+``, a leading national prefix becomes ``+`` and the country code.  Where a real numbering
plan is needed (the NANP trunk ``1``, Italian numbers keeping their ``0``, validity checks),
the caller injects an :data:`E164Parser`; the runtime wires one backed by ``phonenumbers``
(the core itself imports nothing outside the standard library).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import UsageError

__all__ = [
    "E164Parser",
    "NumberFormat",
    "NumberPlan",
    "OutputForm",
    "dial_digits",
    "to_e164",
    "from_e164",
    "translate",
]

#: ``(digits, region) -> "+CC..."`` or None when the number is not possible in that plan.
E164Parser = Callable[[str, str], str | None]

OutputForm = Literal["e164", "e164-noplus", "national"]
_FORMS: tuple[str, ...] = ("e164", "e164-noplus", "national")

# Visual separators (RFC 3966 §5.1.1 visual-separator) and the brackets people type.
_VISUAL = re.compile(r"[\s\-.()/]")
# global-number-digits = "+" *phonedigit DIGIT *phonedigit ; we also keep * and # (codes).
_DIALLED = re.compile(r"\+?[0-9*#]+")
_DIGITS = re.compile(r"[0-9]+")


def dial_digits(text: str) -> str:
    """``text`` without visual separators (``+49 (30) 123-45`` -> ``+493012345``)."""
    return _VISUAL.sub("", text)


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How numbers dialled on one trunk are read.

    ``region`` is an ISO 3166 region code (``DE``, ``US``) handed to the injected parser;
    ``country_code`` (digits, no ``+``), ``national_prefix`` and ``international_prefix`` drive
    the built-in fallback and the national output form.  ``strip_prefixes`` are removed
    first, longest match, once (outside-line digits, tech prefixes).
    """

    region: str = ""
    country_code: str = ""
    national_prefix: str = "0"
    international_prefix: str = "00"
    strip_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.country_code and not _DIGITS.fullmatch(self.country_code):
            raise UsageError(f"country_code must be digits, not {self.country_code!r}")
        for name in ("national_prefix", "international_prefix"):
            value = getattr(self, name)
            if value and not _DIGITS.fullmatch(value):
                raise UsageError(f"{name} must be digits, not {value!r}")

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> NumberPlan:
        """Build from a TOML table (``region``, ``country_code``, ``national_prefix``...)."""
        return cls(
            region=str(table.get("region", "")).upper(),
            country_code=str(table.get("country_code", "")).lstrip("+"),
            national_prefix=str(table.get("national_prefix", "0")),
            international_prefix=str(table.get("international_prefix", "00")),
            strip_prefixes=tuple(str(p) for p in table.get("strip_prefixes", ())),
        )


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """How a trunk wants numbers written: ``form`` then ``add_prefix`` in front."""

    form: OutputForm = "e164"
    add_prefix: str = ""

    def __post_init__(self) -> None:
        if self.form not in _FORMS:
            raise UsageError(f"number form must be one of {_FORMS}, not {self.form!r}")

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> NumberFormat:
        return cls(form=table.get("form", "e164"), add_prefix=str(table.get("add_prefix", "")))


def _strip(digits: str, prefixes: tuple[str, ...]) -> str:
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and digits.startswith(prefix) and len(digits) > len(prefix):
            return digits[len(prefix):]
    return digits


def to_e164(dialled: str, plan: NumberPlan, parser: E164Parser | None = None) -> str | None:
    """The E.164 form of ``dialled`` on a trunk with ``plan``, or None if it has none.

    None means "not a telephone number we can place" (letters, service codes with ``*``,
    a national number on a trunk whose plan has no country code): the caller decides whether
    to route such a string as is.
    """
    digits = _strip(dial_digits(dialled), plan.strip_prefixes)
    if not _DIALLED.fullmatch(digits) or "*" in digits or "#" in digits:
        return None
    if parser is not None:
        if not digits.startswith("+") and plan.international_prefix and digits.startswith(plan.international_prefix):
            digits = "+" + digits[len(plan.international_prefix):]
        return parser(digits, plan.region)
    if digits.startswith("+"):
        return digits if len(digits) > 1 else None
    if plan.international_prefix and digits.startswith(plan.international_prefix):
        rest = digits[len(plan.international_prefix):]
        return "+" + rest if rest else None
    if not plan.country_code:
        return None
    if plan.national_prefix and digits.startswith(plan.national_prefix):
        rest = digits[len(plan.national_prefix):]
        return "+" + plan.country_code + rest if rest else None
    if plan.national_prefix:
        # A plan with a national prefix and a number without it: a local number we cannot
        # place without an area code, or already international without its prefix.
        return None
    return "+" + plan.country_code + digits


def from_e164(e164: str, fmt: NumberFormat, plan: NumberPlan) -> str:
    """Write ``+CC...`` the way a trunk wants it.

    ``national`` applies only to numbers of the plan's own country; others fall back to
    the international prefix, which is what a national-format carrier expects for them.
    """
    if not e164.startswith("+"):
        raise UsageError(f"not an E.164 number: {e164!r}")
    if fmt.form == "e164":
        out = e164
    elif fmt.form == "e164-noplus":
        out = e164[1:]
    else:
        cc = plan.country_code
        if not cc:
            raise UsageError("national number form needs the plan's country_code")
        if e164[1:].startswith(cc):
            out = plan.national_prefix + e164[1 + len(cc):]
        else:
            out = plan.international_prefix + e164[1:]
    return fmt.add_prefix + out


def translate(dialled: str, source: NumberPlan, target_plan: NumberPlan, target: NumberFormat,
              parser: E164Parser | None = None) -> tuple[str | None, str]:
    """``(e164, as sent)`` for ``dialled`` crossing from one trunk to another.

    A number without an E.164 form is sent as dialled (minus stripped prefixes), so service
    codes still reach a carrier that understands them.
    """
    e164 = to_e164(dialled, source, parser)
    if e164 is None:
        return None, _strip(dial_digits(dialled), source.strip_prefixes)
    return e164, from_e164(e164, target, target_plan)
