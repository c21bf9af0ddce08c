"""scripts/bench.py and scripts/bench_client.py: the client measures a real upstream, the report judges targets.

Numbers are never judged here (benchmarks are for reading); these tests prove the machinery measures at all
and that the report says what the numbers mean.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher, Request
from scripts import bench
from tests.support.tools import repo_root, require_tool, venv_python


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("bench-upstream")
    with bench.upstream(directory) as (port, ca):
        yield port, ca


def test_client_suite_measures_every_phase_against_the_upstream(served: tuple[int, Path]) -> None:
    """`bench_client.py suite --via direct` runs each phase against the real upstream, one start and one result
    line per phase, every figure positive (a failing request would end the suite with an error instead)."""
    port, ca = served
    argv = [str(venv_python()), str(bench.CLIENT), "suite", "--via", "direct", "--port", str(port)]
    argv += ["--cafile", str(ca), "--requests", "40", "--seconds", "0.3", "--download-mb", "3", "--upload-mb", "2"]
    result = bench.run_client(argv, timeout=120)
    assert list(result.phases) == [
        "keepalive",
        "new_connection",
        "rps_20",
        "rps_200",
        "h2_latency",
        "h2_rps",
        "sse",
        "download",
        "upload",
    ]
    assert all(value > 0 for figures in result.phases.values() for value in figures.values()), result.phases
    for phase in ("keepalive", "h2_latency", "sse"):
        assert result.phases[phase]["p95_ms"] >= result.phases[phase]["p50_ms"], phase


def test_memory_is_sampled_per_phase_for_the_named_process(served: tuple[int, Path]) -> None:
    """With a process to sample, the 200-connection peak and the after-download figure are recorded (here the
    client itself stands in for a proxy)."""
    port, ca = served
    argv = [str(venv_python()), str(bench.CLIENT), "suite", "--via", "direct", "--port", str(port), "--cafile"]
    argv += [str(ca), "--only", "rps_200,download", "--seconds", "0.3", "--download-mb", "2"]
    result = bench.run_client(argv, lambda client_pid: client_pid, timeout=120)
    assert result.rss_peak_200 is not None and result.rss_peak_200 > 1
    assert result.rss_after_download is not None and result.rss_after_download > 1


def test_a_failing_client_is_an_error_not_a_number() -> None:
    """A client that cannot reach its upstream makes the run fail loudly (no made-up figure)."""
    argv = [str(venv_python()), str(bench.CLIENT), "suite", "--via", "direct", "--port", "1", "--only", "keepalive"]
    with pytest.raises(RuntimeError, match="exited 1"):
        bench.run_client(argv, timeout=60)


def test_the_tls_relay_carries_the_large_bodies_only(served: tuple[int, Path], tmp_path: Path) -> None:
    """socat relays the download and the upload (the client trusts only the relay's own CA, so a figure at all
    means the bytes went through it, re-encrypted); every other phase gets no figure rather than a made-up one."""
    require_tool("socat")
    port, ca = served
    args = argparse.Namespace(requests=10, seconds=0.3, download_mb=3, upload_mb=2)
    for phase in bench.RELAY_PHASES:
        result = bench.bench_socat(args, phase, port, ca, tmp_path)
        assert list(result.phases) == [phase] and result.phases[phase]["mb_per_s"] > 0, result.phases
    assert bench.bench_socat(args, "keepalive", port, ca, tmp_path).phases == {}


def test_a_baseline_that_ignores_sigterm_is_killed() -> None:
    """`stop` does not wait for ever on a process that will not end (the run would hang): SIGKILL after the
    grace period."""
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    proc = subprocess.Popen([venv_python(), "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"\n"  # SIGTERM is ignored from here on
    bench.stop(proc, grace=0.5)
    assert proc.returncode == -9


def report(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "targets": {
            "direct": {"keepalive": {"p50_ms": 0.5}, "download": {"mb_per_s": 400.0}},
            "mitmdump": {"keepalive": {"p50_ms": 2.5}, "rps_20": {"requests_per_s": 600.0}},
            "boundary": {
                "keepalive": {"p50_ms": 1.5},
                "rps_20": {"requests_per_s": 900.0},
                "download": {"mb_per_s": 150.0},
            },
        },
        "startup": {"boundary_true_s": 0.3, "srt_true_s": 0.5},
        "rss": {"boundary": {"peak_200_mib": 120.0}},
        "decision_10k_median_us": 9.0,
    }
    return base | overrides


def test_targets_are_judged_from_ratios_of_one_run() -> None:
    """Added latency is measured over direct (1.0 vs 2.0 ms -> 0.5, met); a short download (150/400 = 0.375)
    and too much memory are reported as not met; every target of the issue appears once."""
    verdicts = {v["target"]: v for v in bench.evaluate(report())}
    assert len(verdicts) == len(bench.TARGET_TABLE)
    assert verdicts["added keep-alive latency <= 0.8 x mitmdump's"] == {
        "target": "added keep-alive latency <= 0.8 x mitmdump's",
        "measured": 0.5,
        "met": True,
    }
    assert verdicts["streamed download >= 0.5 x direct"]["met"] is False
    assert verdicts["requests/s at 20 connections >= 1.2 x mitmdump"]["measured"] == 1.5
    assert verdicts["proxy RSS at 200 connections <= 100 MiB"]["met"] is False
    assert verdicts["decision at 10,000 rules <= 20 µs median"]["met"] is True


def test_a_missing_measurement_is_unjudged_not_met() -> None:
    """Without srt (not installed) the start-up target has no value and no verdict, rather than a guess."""
    verdicts = {v["target"]: v for v in bench.evaluate(report(startup={"boundary_true_s": 0.3, "srt_true_s": None}))}
    assert verdicts["`boundary run -- true` <= `srt true` (ratio)"] == {
        "target": "`boundary run -- true` <= `srt true` (ratio)",
        "measured": None,
        "met": None,
    }


def test_table_has_each_metric_with_both_ratios() -> None:
    """Each row carries the three targets' figures and boundary's ratio to direct and to mitmdump."""
    results = {name: bench.TargetResult() for name in bench.TARGETS}
    results["direct"].phases["rps_20"] = {"requests_per_s": 1000.0}
    results["mitmdump"].phases["rps_20"] = {"requests_per_s": 400.0}
    results["boundary"].phases["rps_20"] = {"requests_per_s": 500.0}
    rows = bench.table(results)
    assert "| requests/s, 20 connections (req/s) | 1000 | 400 | 500 | 0.50x | 1.25x |" in rows
    assert "| streamed download (MiB/s) | - | - | - | - | - |" in rows


def test_the_relay_table_sets_large_bodies_against_socat() -> None:
    """Download and upload only, with socat's ratio to direct and boundary's to socat."""
    results = {name: bench.TargetResult() for name in bench.TARGETS}
    for name, rate in (("direct", 600.0), ("socat", 300.0), ("boundary", 330.0)):
        results[name].phases["download"] = {"mb_per_s": rate}
    rows = bench.relay_table(results)
    assert rows[2:] == [
        "| streamed download (MiB/s) | 600 | 300 | 330 | 0.50x | 1.10x |",
        "| upload (MiB/s) | - | - | - | - | - |",
    ]


def test_bench_help_runs() -> None:
    """`scripts/bench.py --help` documents the command (and imports cleanly outside the test process)."""
    done = subprocess.run(
        [str(venv_python()), str(repo_root() / "scripts" / "bench.py"), "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "mitmdump" in done.stdout and "--quick" in done.stdout


def test_the_benchmark_policy_has_more_than_ten_rules_and_allows_its_phases() -> None:
    """boundary is measured under a realistic policy (12 rules) that allows exactly what the client does."""
    policy = parse_policy(bench.POLICY, "bench")
    assert len(policy.rules) >= 10
    matcher = Matcher(policy)
    for method, path in (("GET", "/hello"), ("GET", "/big?mb=1"), ("POST", "/upload"), ("GET", "/events?n=9")):
        assert matcher.decide(Request("https", "bench.test", 443, method, path)).allowed, (method, path)


def test_the_load_generator_fixes_its_allocator_thresholds() -> None:
    """The client and upstream pin glibc's mmap/trim thresholds so large-body figures do not depend on which phase
    ran before (a direct download measured 250 or 600 MiB/s by phase order): afterwards a 1 MiB block comes from
    the heap (below the program break), where by default it is a fresh mapping above it."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import ctypes\n"
        "from scripts import bench_client\n"
        "assert bench_client.steady_allocator()\n"
        "libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p; libc.sbrk.restype = ctypes.c_void_p\n"
        "p = libc.malloc(1 << 20); top = libc.sbrk(0)\n"
        "print('heap' if top and p and p < top else 'mapped')\n"
    )
    out = subprocess.run([str(venv_python()), "-c", script, str(repo_root())], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "heap"


@pytest.mark.parametrize(
    ("a", "b", "shown"),
    [(500.0, 400.0, "1.25x"), (1.3, 554.6, "0.0023x"), (1.0, 0.0, "-"), (None, 2.0, "-")],
)
def test_ratios_keep_two_decimals_or_two_significant_digits(a: float | None, b: float | None, shown: str) -> None:
    """A tiny ratio is not shown as 0.00x (boundary's event delay against mitmdump's)."""
    assert bench.ratio(a, b) == shown


def test_each_figure_is_its_best_round_and_memory_its_highest() -> None:
    """Rounds alternate between targets; a target's figure is its best round (lowest latency, highest rate),
    its memory the worst round's, and a phase that one round lacks still counts from the others."""
    slow = bench.TargetResult(
        phases={"keepalive": {"p50_ms": 2.0, "p95_ms": 3.0}, "rps_20": {"requests_per_s": 500.0}},
        rss_peak_200=90.0,
        rss_after_download=None,
    )
    fast = bench.TargetResult(
        phases={"keepalive": {"p50_ms": 1.5, "p95_ms": 3.5}, "download": {"mb_per_s": 200.0}},
        rss_peak_200=95.0,
        rss_after_download=91.0,
    )
    best = bench.best_of([slow, fast])
    assert best.phases == {
        "keepalive": {"p50_ms": 1.5, "p95_ms": 3.0},
        "rps_20": {"requests_per_s": 500.0},
        "download": {"mb_per_s": 200.0},
    }
    assert (best.rss_peak_200, best.rss_after_download) == (95.0, 91.0)


def test_rounds_must_be_positive() -> None:
    done = subprocess.run(
        [venv_python(), repo_root() / "scripts" / "bench.py", "--rounds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--rounds must be positive, not 0" in done.stderr


def test_rounds_run_every_phase_of_the_load_generator() -> None:
    from scripts import bench_client

    counts = argparse.Namespace(requests=1, seconds=1.0, download_mb=1, upload_mb=1)
    assert tuple(name for name, _ in bench_client.phases(counts)) == bench.PHASES


def test_a_round_gathers_its_phases_from_separate_runs() -> None:
    gathered = bench.TargetResult()
    gathered.add(bench.TargetResult(phases={"rps_200": {"requests_per_s": 600.0}}, rss_peak_200=97.0))
    gathered.add(bench.TargetResult(phases={"download": {"mb_per_s": 300.0}}, rss_after_download=98.0))
    assert gathered == bench.TargetResult(
        phases={"rps_200": {"requests_per_s": 600.0}, "download": {"mb_per_s": 300.0}},
        rss_peak_200=97.0,
        rss_after_download=98.0,
    )
