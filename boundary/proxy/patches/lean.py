"""A leaner proxy: defaults of mitmproxy, glibc and OpenSSL that cost CPU or memory on every request or connection
and buy a proxy of boundary's nothing. Performance only: the policy depends on none of them.

- **mitmproxy's debug-only type checks** (`http.MessageData.__post_init__`). mitmproxy checks the type of every
  field of every request and response it builds, but only `if __debug__`: a development check that `python -O`
  drops. It is a large share of the proxy's CPU per request, and each TypeError it catches of a union field
  leaves a reference cycle (exception, traceback, frame) for the collector. It is dropped as -O would, without
  -O (which would also drop every assert, ours and mitmproxy's). The values come from mitmproxy's own parsers.
- **Large buffers from the heap** (glibc's `mallopt`). By default glibc maps each buffer over 128 KiB fresh from
  the kernel and gives it back when freed (its adaptive threshold does not hold once two such buffers are freed
  together), so every 1 MiB read of an upload (`relay.READ_SIZE`) would be page-faulted in anew. Not glibc:
  nothing to do.
- **Idle TLS connections hand their record buffers back** (`SSL_MODE_RELEASE_BUFFERS`, through pyOpenSSL's
  private bindings). pyOpenSSL has no per-connection `set_mode` and refuses to change a context once used
  (mitmproxy caches them), so `release_idle_buffers` sets it on each new connection, as mitmproxy's own TLS addon
  reaches the same bindings for its verification parameters.

The measurements behind each are in docs/internals.md.
"""

from __future__ import annotations

import ctypes

from mitmproxy import http
from OpenSSL import SSL

__all__ = ["apply", "release_idle_buffers"]

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

# Buffers up to this size come from the heap (mitmproxy's and the relay's reads are at most 1 MiB) ...
_MMAP_THRESHOLD = 4 << 20
# ... and this much may stay free at its top, so that a read's buffer is not handed back and faulted in again.
_TRIM_THRESHOLD = 16 << 20


def apply() -> None:
    """Drop mitmproxy's debug-only type checks and keep large buffers on the heap (idempotent)."""
    _skip_debug_only_type_checks()
    _keep_large_buffers()


def release_idle_buffers(connection: SSL.Connection) -> None:
    """Have `connection` hand its record buffers back to OpenSSL while it is idle."""
    lib = SSL._lib  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings: no public set_mode
    lib.SSL_set_mode(connection._ssl, lib.SSL_MODE_RELEASE_BUFFERS)  # `_ssl`: the connection's OpenSSL SSL*


def _skip_debug_only_type_checks() -> None:
    if "__post_init__" in vars(http.MessageData):  # only `if __debug__`: under -O there is nothing to drop
        http.MessageData.__post_init__ = _no_post_init  # type: ignore[method-assign]  # replaces a method


def _no_post_init(self: http.MessageData) -> None:
    return None


def _keep_large_buffers() -> None:
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
