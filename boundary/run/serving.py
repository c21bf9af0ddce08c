"""Serving a started jail: the fake DNS at once, the proxy as soon as mitmproxy is imported, until the workload
exits. Split from `session` so that asyncio, the DNS server and the gate are imported after the jail's helper is
forked, while it builds the namespaces, rather than before.

Fail closed: if the proxy cannot be imported or started, or its master ends while the workload runs, the jail has
no way out; the run ends with a `ProxyError` (one line, exit 125) and `session` kills the workload.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import threading
from typing import Any

from boundary.dns.fakedns import FakeDnsTable
from boundary.dns.server import DnsServer
from boundary.errors import ProxyError
from boundary.jail import helper
from boundary.proxy.gate import GatedEventLoop
from boundary.proxy.settings import ProxySettings, RunningProxy, StartProxy

__all__ = ["ProxySettings", "serve"]


def serve(jail: helper.Jail, settings: ProxySettings) -> int:
    """Serve `jail` until its workload exits; its exit code (see `helper.exit_code`)."""
    with asyncio.Runner(loop_factory=GatedEventLoop) as runner:
        return runner.run(_serve(jail, settings))


async def _serve(jail: helper.Jail, settings: ProxySettings) -> int:
    loop = asyncio.get_running_loop()
    for signum in helper.FORWARDED_SIGNALS:
        loop.add_signal_handler(signum, jail.signal, signum)
    exited = _watch_exit(loop, jail.helper_pid)
    table = FakeDnsTable()
    dns = DnsServer(table)
    await dns.start(jail.dns_udp_socket, jail.dns_tcp_socket)
    try:
        # mitmproxy's import (~0.5 s) runs beside the workload; a workload that is done first never waits for it.
        proxy_module = _import_in_background(loop, "boundary.proxy.master")
        await asyncio.wait({exited, proxy_module}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            proxy = await _start_proxy(proxy_module, jail.proxy_socket, table, settings)
            # Fail closed: without the proxy the jail has no way out; `_run_in` kills the command.
            await serve_until(exited, proxy, "; the command was stopped")
        status = exited.result()
    finally:
        await dns.close()
    return helper.exit_code(status)


async def serve_until(done: asyncio.Future[Any], proxy: RunningProxy, stopped: str = "") -> None:
    """Serve until `done`; the proxy stopping first is a `ProxyError` (`stopped` ends its message). The proxy
    is closed either way."""
    try:
        watched: set[asyncio.Future[Any]] = {done, proxy.stopped}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            raise ProxyError(f"the proxy stopped ({proxy.why_stopped()}){stopped}")
    finally:
        await proxy.close()


async def _start_proxy(
    imported: asyncio.Future[Any], listen: socket.socket, table: FakeDnsTable, settings: ProxySettings
) -> RunningProxy:
    """The running proxy of the imported `boundary.proxy.master`; failing to import or start it is a
    `ProxyError`."""
    try:
        start: StartProxy = imported.result().start_proxy
        return await start(listen=listen, table=table, settings=settings)
    except Exception as e:
        raise ProxyError(f"the proxy could not start ({type(e).__name__}: {e}); the command was stopped") from e


def _import_in_background(loop: asyncio.AbstractEventLoop, name: str) -> asyncio.Future[Any]:
    """Import a module in a daemon thread (an executor thread would be joined at exit, delaying it)."""
    imported: asyncio.Future[Any] = loop.create_future()

    def work() -> None:
        try:
            module = importlib.import_module(name)
        except BaseException as e:  # delivered to the awaiting task
            if not isinstance(e, Exception):
                # asyncio would re-raise SystemExit & co. out of the loop, and the run would end with their code.
                e = ImportError(f"importing {name} raised {type(e).__name__}: {e}")
            loop.call_soon_threadsafe(imported.set_exception, e)
        else:
            loop.call_soon_threadsafe(imported.set_result, module)

    threading.Thread(target=work, name=f"import {name}", daemon=True).start()
    return imported


def _watch_exit(loop: asyncio.AbstractEventLoop, pid: int) -> asyncio.Future[int]:
    """A future for the helper's wait status, without a SIGCHLD handler or a thread: a pidfd is readable at exit."""
    done: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if not done.done():
            done.set_result(status)

    loop.add_reader(pidfd, reap)
    return done
