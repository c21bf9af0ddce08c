"""A local git smart-HTTP server over HTTPS for tests: ``git http-backend`` behind the upstream machinery.

Theory of operation. :func:`start_git_server` creates a bare repository ``<root>/<owner>/<repo>.git`` in a
temporary directory, gives it one commit (built with plumbing, so no work tree and no user config are
involved) and serves ``<root>`` with an HTTPS :class:`~tests.support.upstreams.Upstream` whose handler runs
``git http-backend`` as a CGI program per request:

- the request becomes the CGI environment (``GIT_PROJECT_ROOT``, ``GIT_HTTP_EXPORT_ALL``, ``PATH_INFO``,
  ``QUERY_STRING``, ``REQUEST_METHOD``, ``CONTENT_TYPE``, ``CONTENT_LENGTH`` and every header as ``HTTP_*``,
  so ``Git-Protocol: version=2`` and ``Content-Encoding: gzip`` reach the backend);
- the request body is streamed into the CGI's stdin while its stdout is read (a push can be bigger than a
  pipe buffer: writing first and reading afterwards could deadlock);
- the CGI's header block (``Status:`` and the other headers, up to the blank line) becomes the response head
  and the rest of its stdout is streamed back as the body.

The repository has ``http.receivepack=true``, so a push that reaches this server *succeeds*: a test proving
that a push was stopped by boundary cannot pass merely because the server refused it.

The server listens on 127.0.0.1 only, with a certificate (from the given :class:`TestCA`) for ``names``.
Clients reach it through ``--resolve`` (boundary's or curl's); git itself has no resolve option, so a
direct, unjailed client uses ``https://localhost:<port>/...`` with ``localhost`` among ``names`` and
``GIT_SSL_CAINFO`` pointing at the CA. Test names are never resolved with the host resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.upstreams import Exchange, FrontedUpstream, TestCA, Upstream, start_https_upstream

__all__ = ["GIT_IDENTITY", "GitServer", "git_env", "start_git_server"]

#: Author and committer of the commits this module makes (fixed dates: commit ids are reproducible).
GIT_IDENTITY: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": "boundary tests",
    "GIT_AUTHOR_EMAIL": "tests@boundary.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "boundary tests",
    "GIT_COMMITTER_EMAIL": "tests@boundary.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}

# Response headers the Exchange writes itself; the CGI's copies are dropped instead of being sent twice.
_OWN_HEADERS = frozenset({"status", "content-type", "content-length", "transfer-encoding", "connection"})
# Request headers CGI passes as CONTENT_TYPE / CONTENT_LENGTH, or that describe the hop, not the request.
_NOT_CGI_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "connection", "proxy"})
_MAX_CGI_HEAD = 64 * 1024


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for running git that ignores the host's system and user configuration."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    return env | dict(extra or {})


def _git(args: Sequence[str], *, cwd: Path | None = None, input: bytes | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=git_env(GIT_IDENTITY),
        input=input,
        capture_output=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result.stdout.decode().strip()


class GitServer(FrontedUpstream):
    """A bare repository served over git smart-HTTP (HTTPS) on 127.0.0.1. See the module doc."""

    def __init__(self, ca: TestCA, names: Sequence[str], owner: str, repo: str, files: Mapping[str, bytes]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="boundary-gitserver-"))
        self.owner = owner
        self.repo = repo
        #: The bare repository on disk.
        self.repo_path = self.root / owner / f"{repo}.git"
        self.names = tuple(names)
        self._upstream: Upstream | None = None
        try:
            self._create_repo(files)
            self._upstream = start_https_upstream(ca, self.names, handler=self._handle)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # ---------------------------------------------------------------- public API

    @property
    def upstream(self) -> Upstream:
        """The HTTPS server underneath (its ``requests`` and ``errors``)."""
        if self._upstream is None:
            raise RuntimeError("the git server is not running")
        return self._upstream

    @property
    def host(self) -> str:
        return self.upstream.host

    @property
    def path(self) -> str:
        """The repository's URL path, ``/<owner>/<repo>.git``."""
        return f"/{self.owner}/{self.repo}.git"

    def url(self, name: str, port: int | None = None) -> str:
        """``https://name[:port]/<owner>/<repo>.git`` (no port: the default 443, as through boundary)."""
        return f"https://{name}{'' if port is None else f':{port}'}{self.path}"

    def refs(self) -> dict[str, str]:
        """The repository's refs as ``{refname: object id}``, read from disk."""
        out = _git(["--git-dir", str(self.repo_path), "for-each-ref", "--format=%(refname) %(objectname)"])
        return dict(line.split(" ", 1) for line in out.splitlines())

    def head(self, branch: str = "main") -> str:
        """The commit id ``branch`` points at."""
        return _git(["--git-dir", str(self.repo_path), "rev-parse", f"refs/heads/{branch}"])

    def object_count(self) -> int:
        """How many objects the repository holds, loose and packed (a received pack adds some)."""
        out = _git(["--git-dir", str(self.repo_path), "count-objects", "-v"])
        counts = dict(line.split(": ", 1) for line in out.splitlines())
        return int(counts["count"]) + int(counts["in-pack"])

    def commit(self, files: Mapping[str, bytes], message: str, branch: str = "main") -> str:
        """Add a commit on ``branch`` (server side, as if someone else pushed) replacing the tree with
        ``files``; returns its id."""
        parent = self.head(branch) if f"refs/heads/{branch}" in self.refs() else None
        return self._commit(files, message, branch, parent)

    def close(self) -> None:
        """Stop serving and delete the repository. Idempotent."""
        if self._upstream is not None:
            self._upstream.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------------------------------------------------------------- the repository

    def _create_repo(self, files: Mapping[str, bytes]) -> None:
        self.repo_path.parent.mkdir(parents=True)
        _git(["init", "--quiet", "--bare", "--initial-branch=main", str(self.repo_path)])
        git_dir = ["--git-dir", str(self.repo_path)]
        # Without this http-backend refuses pushes from an unauthenticated client: a test that a push was
        # stopped must not pass because the server said no.
        _git([*git_dir, "config", "http.receivepack", "true"])
        _git([*git_dir, "config", "receive.denyNonFastForwards", "false"])
        self._commit(files, "initial commit", "main", None)

    def _commit(self, files: Mapping[str, bytes], message: str, branch: str, parent: str | None) -> str:
        git_dir = ["--git-dir", str(self.repo_path)]
        entries = []
        for name, content in sorted(files.items()):
            if "/" in name or not name:
                raise ValueError(f"only top-level file names are supported, not {name!r}")
            blob = _git([*git_dir, "hash-object", "-w", "--stdin"], input=content)
            entries.append(f"100644 blob {blob}\t{name}\n")
        tree = _git([*git_dir, "mktree"], input="".join(entries).encode())
        parents = ["-p", parent] if parent else []
        commit = _git([*git_dir, "commit-tree", tree, *parents, "-m", message])
        _git([*git_dir, "update-ref", f"refs/heads/{branch}", commit])
        return commit

    # ---------------------------------------------------------------- the CGI bridge

    def _cgi_env(self, ex: Exchange) -> dict[str, str]:
        env = git_env(
            {
                "GIT_PROJECT_ROOT": str(self.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": ex.version,
                "SERVER_NAME": ex.hostname,
                "SERVER_PORT": str(self.port),
                "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": ex.method,
                "PATH_INFO": ex.path,
                "QUERY_STRING": ex.target.partition("?")[2],
                "CONTENT_TYPE": ex.header("content-type") or "",
            }
        )
        length = ex.header("content-length")
        if length is not None and "chunked" not in (ex.header("transfer-encoding") or "").lower():
            env["CONTENT_LENGTH"] = length
        # else: no CONTENT_LENGTH, and http-backend reads its stdin to EOF (the de-chunked body).
        for key, value in ex.headers:
            if key.lower() not in _NOT_CGI_HEADERS:
                env["HTTP_" + key.upper().replace("-", "_")] = value
        return env

    async def _handle(self, ex: Exchange) -> None:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=self._cgi_env(ex),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        # The backend writes its headers before it reads its input, but the Exchange only starts a response
        # once the request body is consumed: read stdout into a queue meanwhile, so that neither side can
        # fill a pipe and wait for the other.
        head: asyncio.Future[tuple[int, str, list[tuple[str, str]]]] = asyncio.get_running_loop().create_future()
        body: asyncio.Queue[bytes] = asyncio.Queue()
        feeder = asyncio.create_task(self._feed(ex, proc.stdin))
        reader = asyncio.create_task(self._read_cgi(proc.stdout, head, body))
        stderr = asyncio.create_task(proc.stderr.read())
        try:
            await feeder
            status, content_type, headers = await head
            await ex.start_stream(status, content_type=content_type, headers=headers)
            while data := await body.get():
                await ex.send(data)
            await ex.end()
            code = await proc.wait()
            if code != 0:
                raise RuntimeError(f"git http-backend exited {code}: {(await stderr).decode(errors='replace')}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            for task in (feeder, reader, stderr):
                task.cancel()

    @staticmethod
    async def _feed(ex: Exchange, stdin: asyncio.StreamWriter) -> None:
        try:
            async for data in ex.iter_body():
                stdin.write(data)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the backend answered without reading everything (an error response)
        finally:
            stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await stdin.wait_closed()

    @staticmethod
    async def _read_cgi(
        stdout: asyncio.StreamReader,
        head: asyncio.Future[tuple[int, str, list[tuple[str, str]]]],
        body: asyncio.Queue[bytes],
    ) -> None:
        """Read the CGI's stdout: its header block into ``head`` as (status, content type, other headers), then
        the rest onto ``body`` piece by piece as it comes, ending with ``b""``."""
        try:
            head.set_result(await GitServer._read_cgi_head(stdout))
        except Exception as exc:
            head.set_exception(exc)
            return
        while data := await stdout.read(64 * 1024):
            body.put_nowait(data)
        body.put_nowait(b"")

    @staticmethod
    async def _read_cgi_head(stdout: asyncio.StreamReader) -> tuple[int, str, list[tuple[str, str]]]:
        """The CGI header block: (status, content type, other headers). Lines may end in LF or CRLF."""
        status, content_type = 200, "text/plain"
        headers: list[tuple[str, str]] = []
        size = 0
        while True:
            line = await stdout.readline()
            size += len(line)
            if not line or size > _MAX_CGI_HEAD:
                raise RuntimeError("git http-backend ended or overflowed before the end of its headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return status, content_type, headers
            key, sep, value = text.partition(":")
            if not sep:
                raise RuntimeError(f"malformed CGI header line {text!r}")
            lkey, value = key.strip().lower(), value.strip()
            if lkey == "status":
                status = int(value.split(" ", 1)[0])
            elif lkey == "content-type":
                content_type = value
            elif lkey not in _OWN_HEADERS:
                headers.append((key.strip(), value))


def start_git_server(
    ca: TestCA,
    names: Sequence[str] = ("github.com",),
    *,
    owner: str = "acme",
    repo: str = "demo",
    files: Mapping[str, bytes] | None = None,
) -> GitServer:
    """A :class:`GitServer` for ``https://<name>/<owner>/<repo>.git`` with one commit of ``files``
    (default: a ``README.md``), its certificate valid for every name in ``names``."""
    if files is None:
        files = {"README.md": f"# {owner}/{repo}\n\nServed by tests/support/gitserver.py.\n".encode()}
    return GitServer(ca, names, owner, repo, files)
