"""E.164 normalization rules: table-driven, with the built-in fallback and an injected parser."""

from __future__ import annotations

import pytest

from sipline.sip.b2bua.numbers import NumberFormat, NumberPlan, dial_digits, from_e164, to_e164, translate
from sipline.sip.errors import UsageError

DE = NumberPlan(region="DE", country_code="49")
DE_PBX = NumberPlan(region="DE", country_code="49", strip_prefixes=("0", "9"))
US = NumberPlan(region="US", country_code="1", national_prefix="1", international_prefix="011")
NOPREFIX = NumberPlan(country_code="33", national_prefix="")


@pytest.mark.parametrize(
    ("dialled", "plan", "expected"),
    [
        ("+49 30 1234567", DE, "+49301234567"),
        ("030 1234-567", DE, "+49301234567"),
        ("0049301234567", DE, "+49301234567"),
        ("00", DE, None),
        ("0", DE, None),
        ("+", DE, None),
        ("301234567", DE, None),  # no national prefix: cannot place
        ("*21#", DE, None),
        ("alice", DE, None),
        ("9030123", DE_PBX, "+4930123"),  # outside-line 9 stripped, then national
        ("12125550100", US, "+12125550100"),
        ("01144201234", US, "+44201234"),
        ("612345678", NOPREFIX, "+33612345678"),
        ("0301234", NumberPlan(), None),  # no country code: national numbers are unknown
        ("+4930", NumberPlan(), "+4930"),
    ],
)
def test_to_e164_fallback(dialled: str, plan: NumberPlan, expected: str | None) -> None:
    assert to_e164(dialled, plan) == expected


def test_injected_parser_sees_international_prefix_as_plus() -> None:
    seen: list[tuple[str, str]] = []

    def parser(digits: str, region: str) -> str | None:
        seen.append((digits, region))
        return "+1" + digits[-10:] if len(digits) >= 10 else None

    assert to_e164("011 2125550100", US, parser) == "+12125550100"
    assert to_e164("555", US, parser) is None
    assert seen == [("+2125550100", "US"), ("555", "US")]


@pytest.mark.parametrize(
    ("e164", "fmt", "plan", "expected"),
    [
        ("+49301234", NumberFormat("e164"), DE, "+49301234"),
        ("+49301234", NumberFormat("e164-noplus"), DE, "49301234"),
        ("+49301234", NumberFormat("national"), DE, "0301234"),
        ("+44201234", NumberFormat("national"), DE, "0044201234"),
        ("+49301234", NumberFormat("e164-noplus", add_prefix="1234#"), DE, "1234#49301234"),
    ],
)
def test_from_e164(e164: str, fmt: NumberFormat, plan: NumberPlan, expected: str) -> None:
    assert from_e164(e164, fmt, plan) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: from_e164("4930", NumberFormat(), DE),
        lambda: from_e164("+4930", NumberFormat("national"), NumberPlan()),
        lambda: NumberFormat("weird"),  # type: ignore[arg-type]
        lambda: NumberPlan(country_code="+49"),
        lambda: NumberPlan(national_prefix="x"),
    ],
)
def test_misuse(call: object) -> None:
    with pytest.raises(UsageError):
        call()  # type: ignore[operator]


def test_translate_and_from_toml() -> None:
    plan = NumberPlan.from_toml({"region": "de", "country_code": "+49", "strip_prefixes": ["9"]})
    assert plan == NumberPlan("DE", "49", strip_prefixes=("9",))
    fmt = NumberFormat.from_toml({"form": "national", "add_prefix": "#1"})
    assert translate("9 030 123", plan, DE, fmt) == ("+4930123", "#1030123")
    assert translate("9*21#", plan, DE, fmt) == (None, "*21#")
    assert dial_digits("+1 (212) 555-0100") == "+12125550100"
