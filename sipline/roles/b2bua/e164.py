"""The ``phonenumbers`` side of number normalization (the core stays standard-library only).

:mod:`sipline.sip.b2bua.numbers` holds the rules as data and accepts an injected parser;
this module supplies the one backed by Google's libphonenumber metadata (the
``phonenumbers`` package), and builds a :class:`NumberPlan` for a region from the same
metadata so an operator can write just ``numbers = {region = "DE"}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from ...sip.b2bua.numbers import NumberPlan

__all__ = ["parse_e164", "complete_plan"]


def parse_e164(digits: str, region: str) -> str | None:
    """``digits`` dialled in ``region`` as ``+CC...``; None when not a possible number there."""
    try:
        number = phonenumbers.parse(digits, region or None)
    except NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def complete_plan(plan: NumberPlan) -> NumberPlan:
    """Fill an empty ``country_code`` (and the national/international prefixes left at their
    defaults) from the region's metadata."""
    if not plan.region:
        return plan
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(plan.region, None)
    if metadata is None:
        return plan
    changes: dict[str, Any] = {}
    if not plan.country_code:
        changes["country_code"] = str(metadata.country_code)
    if plan.national_prefix == "0" and metadata.national_prefix is not None:
        changes["national_prefix"] = metadata.national_prefix
    intl = metadata.preferred_international_prefix or metadata.international_prefix
    if plan.international_prefix == "00" and intl and intl.isdigit():
        changes["international_prefix"] = intl
    return dataclasses.replace(plan, **changes) if changes else plan
