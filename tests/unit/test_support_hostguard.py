"""The host guard's pure parts: the nft script it loads and the counter JSON it reads back."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.hostguard import (
    COUNTER,
    GUARDED_IPV4,
    GUARDED_IPV6,
    TABLE,
    TABLE_PREFIX,
    HostGuard,
    HostGuardError,
    parse_counter,
    ruleset,
    stale_tables,
)


def _counter_json(**counter: object) -> str:
    meta = {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}
    return json.dumps({"nftables": [meta, {"counter": counter}]})


def test_ruleset_recreates_the_table_in_one_transaction() -> None:
    """The script first makes sure the table exists, deletes it (dropping a stale copy), then defines it."""
    lines = ruleset().splitlines()
    assert lines[:3] == [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{"]


@pytest.mark.parametrize("hook", ["output", "forward"])
def test_ruleset_rejects_and_counts_every_guarded_range_in_both_hooks(hook: str) -> None:
    """Each hook has a filter chain that counts guarded destinations in the named counter and rejects them."""
    text = ruleset()
    chain = text.split(f"chain {hook} {{", 1)[1].split("}\n", 1)[0]
    assert f"type filter hook {hook} priority 0; policy accept;" in chain
    assert f"ip daddr {{ {', '.join(GUARDED_IPV4)} }} counter name {COUNTER} reject" in chain
    assert f"ip6 daddr {{ {', '.join(GUARDED_IPV6)} }} counter name {COUNTER} reject" in chain


def test_ruleset_declares_the_named_counter() -> None:
    assert f"counter {COUNTER} {{" in ruleset()


def test_guarded_ranges_leave_out_the_range_hosts_here_use() -> None:
    """192.0.2.0/24 has been seen as a real host address on this machine kind: guarding it would break it."""
    assert not any(net.startswith("192.0.2.") for net in GUARDED_IPV4)
    assert "198.18.0.0/15" in GUARDED_IPV4  # boundary's synthetic addresses


def test_ruleset_without_ipv6_ranges_has_no_ip6_rule() -> None:
    text = ruleset(ipv6=())
    assert "ip6 daddr" not in text
    assert "ip daddr" in text


def test_ruleset_names_a_custom_table_and_counter() -> None:
    text = ruleset(table="other", counter="hits")
    assert text.startswith("table inet other\ndelete table inet other\ntable inet other {")
    assert "counter hits {" in text
    assert "counter name hits reject" in text


def test_parse_counter_reads_packets_and_bytes() -> None:
    text = _counter_json(family="inet", name=COUNTER, table=TABLE, handle=3, packets=2, bytes=89)
    assert parse_counter(text) == (2, 89)


def test_parse_counter_ignores_counters_of_other_tables() -> None:
    other = {"counter": {"family": "inet", "name": COUNTER, "table": "someone_else", "packets": 7, "bytes": 1}}
    mine = {"counter": {"family": "inet", "name": COUNTER, "table": TABLE, "packets": 0, "bytes": 0}}
    assert parse_counter(json.dumps({"nftables": [other, mine]})) == (0, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "unexpected nft JSON"),
        ('{"something": []}', "unexpected nft JSON"),
        ('{"nftables": [{"metainfo": {}}]}', "no counter 'escapes'"),
        (_counter_json(name=COUNTER, table=TABLE, packets="2", bytes=0), "no packet/byte counts"),
    ],
    ids=["garbage", "no-nftables-key", "no-counter", "non-integer-count"],
)
def test_parse_counter_rejects_unexpected_output(text: str, message: str) -> None:
    """A guard that cannot read its counter must fail loudly, never report 0."""
    with pytest.raises(HostGuardError, match=message):
        parse_counter(text)


def test_an_inactive_guard_counts_nothing_and_runs_no_nft() -> None:
    """Without root there is no table: the guard reports 0 without calling nft (which is not even set)."""
    guard = HostGuard(nft=None)
    assert guard.packets() == 0
    assert guard.counts() == (0, 0)
    guard.remove()  # no nft: nothing to remove, no error


def test_a_guard_without_nft_refuses_to_install() -> None:
    with pytest.raises(HostGuardError, match="nft is not installed"):
        HostGuard(nft=None).install()


def _tables_json(*tables: tuple[str, str]) -> str:
    items: list[dict[str, object]] = [{"metainfo": {"version": "1.0.6"}}]
    items += [{"table": {"family": family, "name": name, "handle": 1}} for family, name in tables]
    return json.dumps({"nftables": items})


def test_this_sessions_table_name_carries_its_pid() -> None:
    """Sessions side by side on one host each have their own table."""
    assert f"{TABLE_PREFIX}_{os.getpid()}" == TABLE


def test_stale_tables_are_those_of_dead_sessions_and_the_old_unsuffixed_name() -> None:
    listing = _tables_json(
        ("inet", f"{TABLE_PREFIX}_100"),  # dead
        ("inet", f"{TABLE_PREFIX}_200"),  # alive: another session's, never touched
        ("inet", TABLE_PREFIX),  # the name older runs used
        ("ip", f"{TABLE_PREFIX}_100"),  # other family: not ours
        ("inet", "boundary_test_guard_x"),  # not a pid
        ("inet", "filter"),
    )
    assert stale_tables(listing, alive=lambda pid: pid == 200) == [f"{TABLE_PREFIX}_100", TABLE_PREFIX]


def test_stale_tables_rejects_unexpected_output() -> None:
    with pytest.raises(HostGuardError, match="unexpected nft JSON"):
        stale_tables("[]", alive=lambda pid: True)
