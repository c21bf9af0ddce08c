"""Tests of the local git smart-HTTP server (tests/support/gitserver.py) with the real git client, unjailed.

git has no resolve option, so these clients use ``https://localhost:<port>/...`` (the certificate names
``localhost`` too) and trust the test CA through ``GIT_SSL_CAINFO``; curl maps ``github.com`` with
``--resolve``. No test name is ever resolved with the host resolver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gitserver import GitServer, git_env, start_git_server
from tests.support.upstreams import TestCA

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def server(ca: TestCA) -> Iterator[GitServer]:
    with start_git_server(ca, names=("github.com", "localhost")) as srv:
        yield srv


def git(args: list[str], ca_pem: Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real git client with only the test CA trusted and no host configuration."""
    env = git_env({"GIT_SSL_CAINFO": str(ca_pem), "HOME": str(cwd)})
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def commit_all(clone: Path, ca_pem: Path, message: str) -> None:
    git(["add", "-A"], ca_pem, clone)
    git(["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", message], ca_pem, clone)


def test_clone_gets_the_initial_commit(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """`git clone` over smart HTTP gets the one commit the server made, with its README."""
    git(["clone", "-q", server.url("localhost", server.port), "demo"], ca_pem, tmp_path)
    assert (tmp_path / "demo" / "README.md").read_text().startswith("# acme/demo")
    assert git(["rev-parse", "HEAD"], ca_pem, tmp_path / "demo").stdout.strip() == server.head()
    assert server.errors == []


def test_clone_speaks_the_smart_protocol(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """A clone is exactly the two smart-HTTP requests a policy has to allow: the ref advertisement for
    git-upload-pack, then POSTs to git-upload-pack (protocol v2 header passed through to the backend)."""
    git(["clone", "-q", server.url("localhost", server.port), "demo"], ca_pem, tmp_path)
    seen = [(r.method, r.path) for r in server.requests]
    assert seen[0] == ("GET", "/acme/demo.git/info/refs?service=git-upload-pack")
    assert {request for request in seen[1:]} == {("POST", "/acme/demo.git/git-upload-pack")}
    assert all(r.header("git-protocol") == "version=2" for r in server.requests)


def test_fetch_gets_a_commit_made_on_the_server(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """After the server's branch moves, `git fetch` brings the new commit and its file."""
    git(["clone", "-q", server.url("localhost", server.port), "demo"], ca_pem, tmp_path)
    new = server.commit({"README.md": b"# acme/demo\n", "NEWS": b"news\n"}, "second commit")
    git(["fetch", "-q"], ca_pem, tmp_path / "demo")
    assert git(["rev-parse", "origin/main"], ca_pem, tmp_path / "demo").stdout.strip() == new
    assert git(["show", "origin/main:NEWS"], ca_pem, tmp_path / "demo").stdout == "news\n"


def test_push_succeeds_and_moves_the_branch(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """The server accepts an unauthenticated push (http.receivepack=true): a test that a push was stopped
    elsewhere cannot pass because this server refused it."""
    git(["clone", "-q", server.url("localhost", server.port), "demo"], ca_pem, tmp_path)
    clone = tmp_path / "demo"
    (clone / "pushed.txt").write_text("pushed\n")
    commit_all(clone, ca_pem, "pushed commit")
    git(["push", "-q", "origin", "main"], ca_pem, clone)
    assert server.head() == git(["rev-parse", "HEAD"], ca_pem, clone).stdout.strip()
    assert ("POST", "/acme/demo.git/git-receive-pack") in [(r.method, r.path) for r in server.requests]


def test_big_push_streams_a_chunked_body(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """A pack bigger than git's post buffer (so sent chunked, with no Content-Length) and than a pipe's
    buffer reaches the backend whole: the bridge neither deadlocks nor loses the body."""
    git(["clone", "-q", server.url("localhost", server.port), "demo"], ca_pem, tmp_path)
    clone = tmp_path / "demo"
    (clone / "random.bin").write_bytes(os.urandom(3 << 20))  # incompressible
    commit_all(clone, ca_pem, "big commit")
    git(["push", "-q", "origin", "main"], ca_pem, clone)
    assert server.head() == git(["rev-parse", "HEAD"], ca_pem, clone).stdout.strip()
    # Before a chunked body, git sends a 4-byte probe ("0000") to the same URL, to learn about auth early.
    *probes, post = [r for r in server.requests if r.path.endswith("/git-receive-pack")]
    assert [p.body for p in probes] == [b"0000"]
    assert post.header("transfer-encoding") == "chunked" and post.header("content-length") is None
    assert post.body_len > 3 << 20


def test_certificate_names_github_com(server: GitServer, ca_pem: Path) -> None:
    """The server presents a certificate for github.com: curl, mapping the name to 127.0.0.1 itself, gets
    the upload-pack ref advertisement."""
    url = f"https://github.com:{server.port}/acme/demo.git/info/refs?service=git-upload-pack"
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            str(ca_pem),
            "--resolve",
            f"github.com:{server.port}:127.0.0.1",
            "-D",
            "-",
            url,
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: application/x-git-upload-pack-advertisement" in head.lower()
    assert body.startswith(b"001e# service=git-upload-pack\n")


def test_unknown_repository_is_404(server: GitServer, ca_pem: Path, tmp_path: Path) -> None:
    """A repository the server does not have is a 404 from http-backend, passed through as such."""
    result = git(["ls-remote", f"https://localhost:{server.port}/acme/nope.git"], ca_pem, tmp_path, check=False)
    assert result.returncode != 0
    assert "404" in result.stderr or "not found" in result.stderr
    assert server.errors == []


def test_close_removes_the_repository(ca: TestCA) -> None:
    """close() stops the server and deletes the temporary repository; it may be called twice."""
    srv = start_git_server(ca, names=("localhost",), owner="o", repo="r")
    assert (srv.repo_path / "HEAD").is_file() and srv.repo_path.name == "r.git"
    srv.close()
    srv.close()
    assert not srv.root.exists()
