"""The headline workload: the real Claude Code CLI, jailed, talking to a local stand-in for its API.

No CA flags and no base-URL override: claude reaches `api.anthropic.com` by name through the jail's DNS, trusts
the proxy through the jail's trust set-up, and streams its answer (server-sent events) through the proxy.
"""

from __future__ import annotations

import os

from tests.e2e.conftest import Jailer
from tests.support.anthropic_standin import prepare_claude_home, start_anthropic_standin
from tests.support.runner import run_boundary
from tests.support.tools import repo_root, require_claude, rootless_identity
from tests.support.upstreams import TestCA


def test_claude_print_mode_works_jailed_and_its_api_call_is_audited(jail: Jailer, test_ca: TestCA) -> None:
    """`claude -p` prints the stand-in's answer; its Messages API call is an allowed audit line."""
    claude = require_claude()
    home = jail.workdir / "home"
    env = prepare_claude_home(home)
    if jail.rootless:
        uid, gid = rootless_identity()
        for path in [home, *home.rglob("*")]:
            os.chown(path, uid, gid)
    env = {k: v for k, v in env.items() if k not in ("HOME", "PATH")}
    policy = repo_root() / "policies" / "claude-code.yaml"
    with start_anthropic_standin(test_ca, answer="JAILED-CLAUDE-SAYS-HI") as api:
        args = [
            "run",
            "--policy",
            str(policy),
            "--log",
            str(jail.audit_path),
            "--resolve",
            f"api.anthropic.com:443:127.0.0.1:{api.port}",
            "--upstream-ca",
            str(jail.ca_file),
            "--",
            str(claude),
            "-p",
            "Say hi",
        ]
        result = run_boundary(args, rootless=jail.rootless, env=env, home=home, expose=[jail.workdir], timeout=180)
        assert result.returncode == 0, result.stderr.decode()
        assert "JAILED-CLAUDE-SAYS-HI" in result.stdout.decode()
        assert api.message_requests(), api.paths()
    messages = [a for a in jail.audit() if a["path"].startswith("/v1/messages")]
    assert messages, jail.audit()
    assert all(
        (a["decision"], a["host"], a["method"], a["status"]) == ("allow", "api.anthropic.com", "POST", 200)
        for a in messages
    )
