"""The probes both in-jail probe scripts share, against real local sockets (loopback, unix), and the scripts
themselves run by path the way the jail runs them."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import probing
from tests.support.canaries import UnixCanary
from tests.support.tools import venv_python

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "tests" / "escape" / "probe.py", ROOT / "tests" / "integration" / "jail" / "probe.py"]


def test_error_name_is_the_errno_name_or_timeout() -> None:
    assert probing.error_name(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == "ECONNREFUSED"
    assert probing.error_name(FileNotFoundError(errno.ENOENT, "missing")) == "ENOENT"
    assert probing.error_name(TimeoutError()) == "timeout"
    assert probing.error_name(OSError("no errno")) == "timeout"


@pytest.fixture
def udp_echo() -> Iterator[int]:
    """A UDP echo server on 127.0.0.1 that answers one datagram; its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)

        def echo() -> None:
            data, peer = sock.recvfrom(4096)
            sock.sendto(data, peer)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        yield sock.getsockname()[1]
        thread.join(5)


def test_udp_exchange_reports_the_answer_and_who_sent_it(udp_echo: int) -> None:
    outcome = probing.udp_exchange("127.0.0.1", str(udp_echo), b"to there", wait=5)
    assert outcome == {"result": "reply", "data": "to there", "peer": f"127.0.0.1:{udp_echo}"}


def test_udp_exchange_without_an_answer_says_which_stage_failed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        outcome = probing.udp_exchange("127.0.0.1", str(silent.getsockname()[1]), b"x", wait=0.1)
    assert outcome == {"result": "timeout", "stage": "receive"}


def test_unix_connects_sends_a_line_and_reads_the_answer(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with UnixCanary(path) as canary:
        assert probing.unix(path) == {"result": "ok", "reply": "canary"}
        assert [h.data for h in canary.heard] == [b"escaped through a unix socket\n"]


def test_unix_reaches_the_abstract_namespace_by_at_name() -> None:
    name = f"@probing-test-{uuid.uuid4().hex}"
    assert probing.unix(name) == {"result": "ECONNREFUSED"}
    with UnixCanary(name) as canary:
        assert probing.unix(name) == {"result": "ok", "reply": "canary"}
        assert len(canary.heard) == 1


def test_unix_to_a_missing_path_is_enoent(tmp_path: Path) -> None:
    assert probing.unix(str(tmp_path / "missing")) == {"result": "ENOENT"}


def test_unix_is_ok_once_connected_even_if_the_listener_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt got somewhere: ``ok``, with how the exchange after the connection ended."""
    monkeypatch.setattr(probing, "TIMEOUT", 0.2)
    path = str(tmp_path / "mute")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(path)
        mute.listen(1)
        assert probing.unix(path) == {"result": "ok", "reply": None, "exchange": "timeout"}


def test_raw_tries_every_raw_socket_and_is_ok_if_any_opened() -> None:
    outcome = probing.raw()
    assert list(outcome["sockets"]) == [name for name, *_ in probing.RAW_SOCKETS]
    assert outcome["result"] == ("ok" if "ok" in outcome["sockets"].values() else "failed")


def test_icmp_tries_a_ping_socket_and_a_raw_socket() -> None:
    outcome = probing.icmp("127.0.0.1")
    assert set(outcome) == {"result", "ping_socket", "raw_socket"}
    answered = "reply" in (outcome["ping_socket"]["result"], outcome["raw_socket"]["result"])
    assert outcome["result"] == ("reply" if answered else "failed")


def test_run_probes_prints_one_json_line_per_plus_separated_probe(capsys: pytest.CaptureFixture[str]) -> None:
    def echo(*args: str) -> dict[str, Any]:
        return {"result": "ok", "count": len(args)}

    assert probing.run_probes({"echo": echo}, ["+", "echo", "a", "b", "+", "+", "echo"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"probe": "echo", "args": ["a", "b"], "result": "ok", "count": 2},
        {"probe": "echo", "args": [], "result": "ok", "count": 0},
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_each_probe_script_runs_by_path_with_the_shared_probes(script: Path, tmp_path: Path) -> None:
    """Run as the jail runs them (the venv's Python, by path, from elsewhere), both scripts find this module."""
    with UnixCanary(str(tmp_path / "s")) as canary:
        done = subprocess.run(
            [str(venv_python()), str(script), "unix", canary.path, "+", "raw"],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        unix, raw = (json.loads(line) for line in done.stdout.splitlines())
        assert (unix["probe"], unix["result"], unix["reply"]) == ("unix", "ok", "canary")
        assert (raw["probe"], set(raw["sockets"])) == ("raw", {name for name, *_ in probing.RAW_SOCKETS})
        assert len(canary.heard) == 1
