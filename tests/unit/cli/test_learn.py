"""Specification of `boundary learn`'s command line: a policy written, or exit 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.test_cli import boundary

LINE = {
    "ts": "2026-12-08T00:00:00.000Z", "run": "r1", "decision": "allow", "rule": None, "reason": "allowed",
    "method": "GET", "scheme": "https", "host": "api.example.com", "port": 443, "path": "/v1/x", "status": 200,
}  # fmt: skip


def _log(path: Path, *lines: dict[str, object], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)
    return path


def test_learn_writes_the_policy_and_says_how_much_it_learned(tmp_path: Path) -> None:
    log = _log(tmp_path / "run.jsonl", LINE, LINE)
    result = boundary("learn", str(log), "-o", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "boundary: p.yaml: 2 requests learned\n"
    assert '    paths: ["/v1/x"]' in (tmp_path / "p.yaml").read_text()


def test_learn_to_stdout(tmp_path: Path) -> None:
    result = boundary("learn", str(_log(tmp_path / "run.jsonl", LINE)), "-o", "-", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("# Learned by `boundary learn`")


def test_a_line_that_is_no_record_writes_nothing_and_exits_2(tmp_path: Path) -> None:
    log = _log(tmp_path / "run.jsonl", LINE, tail="{not json}\n")
    result = boundary("learn", str(log), "-o", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "p.yaml").exists()
    assert result.stderr.splitlines()[0].startswith(f"boundary: {log}:2: ")
    assert result.stderr.splitlines()[-1] == "boundary: 1 line(s) are not audit records: nothing written"


def test_a_truncated_last_line_is_skipped_with_a_word(tmp_path: Path) -> None:
    log = _log(tmp_path / "run.jsonl", LINE, tail='{"ts": "2026-12')
    result = boundary("learn", str(log), "-o", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].endswith("(skipped)")


def test_an_existing_output_is_kept_unless_forced(tmp_path: Path) -> None:
    log = _log(tmp_path / "run.jsonl", LINE)
    (tmp_path / "p.yaml").write_text("mine\n")
    kept = boundary("learn", str(log), "-o", "p.yaml", cwd=tmp_path)
    assert kept.returncode == 2 and (tmp_path / "p.yaml").read_text() == "mine\n"
    assert kept.stderr == "boundary: -o 'p.yaml': exists; use --force to replace it\n"
    assert boundary("learn", str(log), "-o", "p.yaml", "--force", cwd=tmp_path).returncode == 0


def test_nothing_allowed_means_nothing_written(tmp_path: Path) -> None:
    log = _log(tmp_path / "run.jsonl", {**LINE, "decision": "deny", "reason": "no-matching-rule"})
    result = boundary("learn", str(log), "-o", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "p.yaml").exists()
    assert "nothing to learn" in result.stderr
