"""Smoke test of scripts/bench_policy.py: it runs, on a small policy, and reports numbers (never judged)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from scripts import bench_policy
from tests.support.tools import repo_root, venv_python

SCRIPT = repo_root() / "scripts" / "bench_policy.py"


def bench(*args: str) -> str:
    result = subprocess.run(
        [str(venv_python()), str(SCRIPT), "--rules", "100", "--iterations", "1000", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_prints_a_markdown_table_with_timings_and_the_ratio() -> None:
    """The default output is a Markdown table whose rows carry median and p95 timings, then the ratio line."""
    out = bench()
    assert "| rules | requests | distinct | median µs | p95 µs |" in out
    assert re.search(r"^\| 100 \| hit \| 10 \| \d+\.\d+ \| \d+\.\d+ \|$", out, re.MULTILINE), out
    assert re.search(r"100 rules / 10 rules: hits \d+\.\d+x, misses \d+\.\d+x", out), out


def test_json_output_has_a_positive_median_per_row() -> None:
    """`--json` gives the same measurements as data: six rows, each with a positive median."""
    result = json.loads(bench("--json"))
    assert result["rules"] == 100 and result["small_rules"] == 10
    assert len(result["timings"]) == 6
    assert all(row["median_us"] > 0 and row["p95_us"] >= row["median_us"] for row in result["timings"])
    assert set(result["median_ratio"]) == {"hit", "miss"}


def test_each_row_keeps_its_quietest_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """With rounds, a row's figure is its lowest median over the interleaved rounds (noise only adds time), so
    one busy moment does not decide a row; the rounds are recorded in the result."""
    rounds = ([9.0, 5.0, 7.0, 1.0, 2.0, 3.0], [4.0, 6.0, 8.0, 0.5, 2.5, 1.5], [6.0, 5.5, 9.0, 0.7, 1.0, 4.0])
    medians = iter([median for one_round in rounds for median in one_round])

    def fake_measure(matcher: object, requests: object, iterations: int, rules: int, label: str) -> object:
        median = next(medians)
        return bench_policy.Timing(rules, label, 1, median, median * 2, iterations)

    monkeypatch.setattr(bench_policy, "measure", fake_measure)
    result = bench_policy.run(20, 10, seed=1, rounds=3)
    assert result["rounds"] == 3
    assert [row["median_us"] for row in result["timings"]] == [4.0, 5.0, 7.0, 0.5, 1.0, 1.5]
    assert [row["p95_us"] for row in result["timings"]] == [8.0, 10.0, 14.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("option", ["--rules", "--iterations", "--rounds"])
def test_a_count_below_one_is_refused_quoting_it(option: str) -> None:
    result = subprocess.run(
        [str(venv_python()), str(SCRIPT), option, "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert f"{option} must be positive, not 0" in result.stderr
