"""The phonenumbers-backed parser and plan completion."""

from __future__ import annotations

import pytest

from sipline.roles.b2bua.e164 import complete_plan, parse_e164
from sipline.sip.b2bua.numbers import NumberPlan, to_e164


@pytest.mark.parametrize(
    ("digits", "region", "expected"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("+49 30 1234567", "", "+49301234567"),
        ("(212) 555-0100", "US", "+12125550100"),
        ("1 212 555 0100", "US", "+12125550100"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("abc", "DE", None),
        ("030", "", None),
    ],
)
def test_parse_e164(digits: str, region: str, expected: str | None) -> None:
    assert parse_e164(digits, region) == expected


def test_complete_plan_and_normalize_with_phonenumbers() -> None:
    us = complete_plan(NumberPlan(region="US"))
    assert (us.country_code, us.national_prefix, us.international_prefix) == ("1", "1", "011")
    assert complete_plan(NumberPlan()) == NumberPlan()
    assert complete_plan(NumberPlan(region="ZZ")) == NumberPlan(region="ZZ")
    kept = NumberPlan(region="DE", country_code="49", national_prefix="0")
    assert complete_plan(kept) == kept
    assert to_e164("011 44 20 7946 0018", us, parse_e164) == "+442079460018"
    assert to_e164("9 030 1234567", NumberPlan(region="DE", strip_prefixes=("9",)), parse_e164) == "+49301234567"
