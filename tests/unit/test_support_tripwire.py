"""The tripwire's nft script (pure), and as root a real table that counts and rejects what it matches."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.support import tools
from tests.support.hostguard import nft_binary
from tests.support.tripwire import METADATA, OVERSIZED_DNS, Tripwire, ruleset


def test_ruleset_rejects_and_counts_each_match_in_output_and_forward() -> None:
    text = ruleset("t", ["ip daddr 192.0.2.9", "udp dport 53"])
    assert text.startswith("table inet t\ndelete table inet t\n")
    for hook in ("output", "forward"):
        assert f"type filter hook {hook} priority 0; policy accept;" in text
    assert text.count("ip daddr 192.0.2.9 counter name hits reject") == 2
    assert text.count("udp dport 53 counter name hits reject") == 2


def test_ruleset_needs_a_match() -> None:
    with pytest.raises(ValueError, match="at least one match"):
        ruleset("t", [])


@pytest.mark.parametrize("matches", [METADATA, OVERSIZED_DNS])
def test_the_shipped_matches_are_valid_nft(matches: tuple[str, ...]) -> None:
    nft = nft_binary()
    if nft is None or not tools.is_root():
        pytest.skip("needs nft and root to check a ruleset")
    done = subprocess.run([nft, "-c", "-f", "-"], input=ruleset("t", matches), text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_inactive_tripwire_counts_nothing_and_installs_nothing() -> None:
    with Tripwire(METADATA, active=False) as wire:
        assert wire.hits() == 0


@tools.requires_root
def test_a_tripwire_rejects_and_counts_matching_packets_then_disappears() -> None:
    # 127.0.0.1 with a port nothing listens on: local, so nothing can leave the machine even if the rule failed.
    with Tripwire(["ip daddr 127.0.0.1 udp dport 9"]) as wire:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
            s.sendto(b"x", ("127.0.0.1", 9))
        assert wire.hits() == 1
    listing = subprocess.run([nft_binary() or "nft", "list", "tables"], capture_output=True, text=True).stdout
    assert wire.table not in listing
