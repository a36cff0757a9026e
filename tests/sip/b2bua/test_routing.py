"""Longest-prefix routes, priorities and weights, CSV import and the failover rules."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sipline.sip.b2bua.routing import (
    TRANSPORT_FAILURE,
    FailoverAction,
    Route,
    RouteTable,
    failover_action,
    final_reason,
    first_pick,
)
from sipline.sip.errors import UsageError

TABLE = RouteTable([
    Route("", "default"),
    Route("+49", "de-a", priority=1),
    Route("+49", "de-b", priority=2),
    Route("+4930", "berlin-a", priority=1, weight=1),
    Route("+4930", "berlin-b", priority=1, weight=3),
    Route("+4930", "berlin-c", priority=5),
])


def lightest(weights: Sequence[int]) -> int:
    return min(range(len(weights)), key=lambda i: weights[i])


@pytest.mark.parametrize(
    ("number", "pick", "expected"),
    [
        ("+4930123", first_pick, ["berlin-b", "berlin-a", "berlin-c"]),
        ("+4930123", lightest, ["berlin-a", "berlin-b", "berlin-c"]),
        ("+49 89 123", first_pick, ["de-a", "de-b"]),
        ("+1555", first_pick, ["default"]),
        ("+4930", first_pick, ["berlin-b", "berlin-a", "berlin-c"]),
    ],
)
def test_order(number: str, pick: object, expected: list[str]) -> None:
    assert TABLE.carriers_for(number, pick) == expected  # type: ignore[arg-type]


def test_unusable_carriers_are_skipped_and_no_match() -> None:
    assert TABLE.carriers_for("+4930123", usable=lambda c: c != "berlin-b") == ["berlin-a", "berlin-c"]
    assert RouteTable([Route("+1", "us")]).carriers_for("+49") == []
    assert RouteTable([Route("+1", "us")]).matching("+") == ()
    assert len(TABLE) == 6


def test_zero_weights_keep_table_order_and_duplicates_collapse() -> None:
    table = RouteTable([Route("+1", "a", weight=0), Route("+1", "b", weight=0), Route("+1", "a", priority=3)])
    assert table.carriers_for("+15") == ["a", "b"]


def test_bad_pick_and_bad_routes() -> None:
    with pytest.raises(UsageError):
        TABLE.carriers_for("+4930", lambda w: 99)
    for kwargs in ({"prefix": "49x", "carrier": "a"}, {"prefix": "+1", "carrier": ""},
                   {"prefix": "+1", "carrier": "a", "weight": -1}, {"prefix": "4+9", "carrier": "a"}):
        with pytest.raises(UsageError):
            Route(**kwargs)  # type: ignore[arg-type]


def test_csv_import() -> None:
    text = (
        "Prefix,Carrier,Priority,Weight,Rate,Description\n"
        "# comment line\n"
        "+49 30,berlin,1,2,0.010,Berlin\n"
        "\n"
        "+49,germany,2,,0.02,\n"
        ",fallback,9,1,,\n"
    )
    table = RouteTable.from_csv(text)
    assert table.routes == (
        Route("+4930", "berlin", 1, 2, 0.01),
        Route("+49", "germany", 2, 1, 0.02),
        Route("", "fallback", 9, 1, None),
    )
    with pytest.raises(UsageError, match="header"):
        RouteTable.from_csv("a,b\n1,2\n")
    with pytest.raises(UsageError, match="line 3"):
        RouteTable.from_csv("prefix,carrier,weight\n+1,a,1\n+2,b,heavy\n")


def test_toml_import() -> None:
    table = RouteTable.from_toml([{"prefix": "+1", "carrier": "us", "rate": 0.5}])
    assert table.routes == (Route("+1", "us", rate=0.5),)
    with pytest.raises(UsageError, match=r"routes\[0\]: missing 'carrier'"):
        RouteTable.from_toml([{"prefix": "+1"}])


@pytest.mark.parametrize(
    ("status", "reason", "action"),
    [
        (TRANSPORT_FAILURE, [], FailoverAction.NEXT_HOST),
        (408, [], FailoverAction.NEXT_HOST),
        (503, [], FailoverAction.NEXT_HOST),
        (500, [], FailoverAction.NEXT_CARRIER),
        (502, [], FailoverAction.NEXT_CARRIER),
        (504, [], FailoverAction.NEXT_CARRIER),
        (407, [], FailoverAction.NEXT_CARRIER),
        (401, [], FailoverAction.NEXT_CARRIER),
        (404, [], FailoverAction.STOP),
        (486, [], FailoverAction.STOP),
        (480, [], FailoverAction.STOP),
        (403, [], FailoverAction.STOP),
        (600, [], FailoverAction.STOP),
        (603, [], FailoverAction.STOP),
        (503, ["Q.850;cause=17;text=\"User busy\""], FailoverAction.STOP),
        (500, ["Q.850 ; cause=1"], FailoverAction.STOP),
        (502, ["SIP;cause=486"], FailoverAction.STOP),
        (502, ["SIP;cause=603"], FailoverAction.STOP),
        (503, ["Q.850;cause=34"], FailoverAction.NEXT_HOST),  # no circuit: network, not callee
        (500, ["SIP;cause=503"], FailoverAction.NEXT_CARRIER),
        (500, ["Q.850;cause=x", "garbage;;"], FailoverAction.NEXT_CARRIER),
        (500, ["SIP;text=\"no cause\", Q.850;cause=21"], FailoverAction.STOP),
    ],
)
def test_failover(status: int, reason: list[str], action: FailoverAction) -> None:
    assert failover_action(status, reason) is action


def test_final_reason_empty() -> None:
    assert not final_reason([])
