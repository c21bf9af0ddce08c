"""git under `boundary run` with policies/github-readonly.yaml: clone and fetch work, a push is denied by name.

The workload is the real git client, inside the jail with nothing but the jail's trust set-up (no
``http.sslCAInfo``, no ``GIT_SSL_NO_VERIFY``). ``github.com`` is a local git smart-HTTP server
(tests/support/gitserver.py) reached through ``--resolve github.com:443:127.0.0.1:<port>``; it *accepts*
pushes, so a push that fails here was stopped by boundary, not by the server.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Jailer, JailRun
from tests.support.gitserver import GitServer, start_git_server
from tests.support.tools import repo_root
from tests.support.upstreams import TestCA

POLICY = (repo_root() / "policies" / "github-readonly.yaml").read_text()
URL = "https://github.com/acme/demo.git"
REPO = "/acme/demo.git"
# Identity on the command line: the jail's HOME is writable, but nothing should depend on a user config.
COMMIT = "git -c user.name=agent -c user.email=agent@example.invalid commit -q"


@pytest.fixture
def github(test_ca: TestCA) -> Iterator[GitServer]:
    """A fresh `github.com/acme/demo` per test, certificate from the CA boundary is told to trust."""
    with start_git_server(test_ca, names=("github.com",), owner="acme", repo="demo") as server:
        yield server


def run_git(jail: Jailer, github: GitServer, script: str) -> JailRun:
    """Run ``sh -c script`` in the jail's work directory under the github-readonly policy."""
    command = f"set -e; cd {shlex.quote(str(jail.workdir))}; {script}"
    return jail.run(
        ["sh", "-c", command],
        policy=POLICY,
        extra=["--resolve", f"github.com:443:127.0.0.1:{github.port}"],
        timeout=120,
    )


def by_rule(audit: list[dict[str, Any]]) -> list[tuple[str, str | None, str, str]]:
    return [(a["decision"], a["rule"], a["method"], a["path"]) for a in audit]


def test_clone_works(jail: Jailer, github: GitServer) -> None:
    """`git clone https://github.com/acme/demo.git` checks out the server's commit; each of its requests is
    allowed by one of the two fetch rules, and nothing else was asked."""
    run = run_git(jail, github, f"git clone -q {URL} demo; git -C demo rev-parse HEAD")
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.strip() == github.head()
    assert (jail.workdir / "demo" / "README.md").read_text().startswith("# acme/demo")
    lines = by_rule(run.audit)
    assert lines[0] == ("allow", "git-fetch-refs", "GET", f"{REPO}/info/refs?service=git-upload-pack")
    assert lines[1:] and set(lines[1:]) == {("allow", "git-fetch-pack", "POST", f"{REPO}/git-upload-pack")}
    assert all(a["status"] == 200 for a in run.audit)
    assert github.errors == []


def test_fetch_gets_a_new_commit(jail: Jailer, github: GitServer) -> None:
    """After the server's branch moves, `git fetch` in the clone (a second jailed run) brings the new commit."""
    first = run_git(jail, github, f"git clone -q {URL} demo")
    assert first.result.returncode == 0, first.stderr
    new = github.commit({"README.md": b"# acme/demo\n", "NEWS": b"news\n"}, "second commit")
    run = run_git(jail, github, "cd demo; git fetch -q; git rev-parse origin/main; git show origin/main:NEWS")
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.split() == [new, "news"]
    assert {a["rule"] for a in run.audit} == {"git-fetch-refs", "git-fetch-pack"}
    assert {a["decision"] for a in run.audit} == {"allow"}


def test_push_is_denied_by_the_no_push_rule(jail: Jailer, github: GitServer) -> None:
    """A commit and `git push`: git fails at the push's first request with the proxy's 403, the audit names
    the explicit deny rule `no-push`, the server never saw a receive-pack request and its repository is
    exactly as before."""
    refs_before, objects_before = github.refs(), github.object_count()
    script = (
        f"git clone -q {URL} demo; cd demo; echo pushed > pushed.txt; git add pushed.txt; "
        f"{COMMIT} -m 'try to push'; git push origin main"
    )
    run = run_git(jail, github, script)
    assert run.result.returncode != 0
    assert "The requested URL returned error: 403" in run.stderr, run.stderr
    # The commit was made: the push itself is what failed.
    assert (jail.workdir / "demo" / "pushed.txt").is_file()

    denied = [a for a in run.audit if a["decision"] == "deny"]
    assert len(denied) == 1, run.audit
    [line] = denied
    assert (line["rule"], line["method"], line["host"], line["path"], line["status"]) == (
        "no-push",
        "GET",
        "github.com",
        f"{REPO}/info/refs?service=git-receive-pack",
        403,
    )
    assert not any("receive-pack" in r.path for r in github.requests)
    assert github.refs() == refs_before
    assert github.object_count() == objects_before


def test_posting_a_pack_directly_is_denied_by_the_no_push_pack_rule(jail: Jailer, github: GitServer) -> None:
    """A client that skips the ref advertisement and POSTs to git-receive-pack straight away gets a 403 that
    names the second deny rule, `no-push-pack`; the server sees nothing."""
    curl = [
        "curl", "-sS", "--max-time", "20", "-D", "-", "-X", "POST",
        "-H", "Content-Type: application/x-git-receive-pack-request", "--data-binary", "0000",
        f"https://github.com{REPO}/git-receive-pack",
    ]  # fmt: skip
    run = jail.run(curl, policy=POLICY, extra=["--resolve", f"github.com:443:127.0.0.1:{github.port}"])
    assert run.result.returncode == 0, run.stderr
    head = run.stdout.partition("\r\n\r\n")[0].lower()
    assert head.split()[1] == "403"
    assert "x-boundary-decision: deny" in head
    [line] = run.audit
    assert (line["decision"], line["rule"], line["method"], line["path"]) == (
        "deny",
        "no-push-pack",
        "POST",
        f"{REPO}/git-receive-pack",
    )
    assert github.requests == []
