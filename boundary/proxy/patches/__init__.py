"""The fence: every use boundary makes of a private API of mitmproxy, h11, h2, pyOpenSSL or asyncio lives in this
package, is applied explicitly and is checked before it is.

Each module exists for one reason, security or performance:

- `framing` (security): closes the seams of mitmproxy's protocol layers where one request could be read two ways
  (an HTTP/2 request forwarded to an HTTP/1 server without framing), where a request head is buffered without
  bound, or where mitmproxy refuses something without any hook seeing it (so no audit line would be written).
- `relay` (performance): takes the body bytes of an already-allowed, streamed HTTP/1 message past mitmproxy's
  layers, and has mitmproxy read its sockets in larger pieces.
- `lean` (performance): drops mitmproxy's debug-only type checks, keeps glibc's large buffers on the heap and has
  idle TLS connections hand their buffers back.

Why each performance patch is worth its private API is measured in docs/internals.md.

`REQUIRED` is every private attribute the patches rely on: each underscore name they read or set, each method
they wrap, override or replace (and what of the same class they call by name), each name they take from a private
module. Each is looked up where the patches find it: on a module or a class, or, for what only instances have, on
a cheaply built real instance of the kind mitmproxy uses. `missing()` names every one that is absent, and
`apply()` (called by `boundary.proxy.master.start_proxy`, before the master runs) refuses to patch anything then,
naming each and the installed versions: after an upgrade that dropped one, boundary does not start rather than
run half-patched. tests/unit/proxy/patches/test_patches.py fails on the same upgrade.

The modules read some of these as they load (`framing` keeps the methods it wraps, `relay` takes pyOpenSSL's
cffi bindings): so importing this package, which any import of them does first, checks the requirements that
need no instance, and an import after such an upgrade fails with the same message rather than an AttributeError.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from OpenSSL import SSL

__all__ = ["REQUIRED", "Required", "apply", "missing"]


@dataclass(frozen=True)
class Required:
    """`names` (attribute paths, dotted) on `owner` (a path in `module`, dotted; "" for the module itself) or, with
    `build`, on the instance `build(owner)` makes."""

    module: str
    owner: str
    names: tuple[str, ...]
    build: Callable[[Any], object] | None = None

    @property
    def where(self) -> str:
        """The owner's dotted path, `()` after it for an instance: `h11._readers.ContentLengthReader()`."""
        where = f"{self.module}.{self.owner}" if self.owner else self.module
        return where + "()" if self.build is not None else where

    def labels(self) -> list[str]:
        """Each name's dotted path: `h11._readers.ContentLengthReader()._remaining`."""
        return [f"{self.where}.{name}" for name in self.names]

    def absent(self) -> list[str]:
        """What of this requirement is missing here: its module, its owner, its instance (a constructor that
        changed: what it takes), or each name the owner lacks."""
        try:
            owner: object = importlib.import_module(self.module)
        except ImportError:
            return [self.module]
        if not _has(owner, self.owner):
            return [f"{self.module}.{self.owner}"]
        owner = _lookup(owner, self.owner)
        if self.build is not None:
            try:
                owner = self.build(owner)
            except Exception as error:  # its constructor changed: what the patches need of it may be gone too
                return [f"{self.where} ({type(error).__name__}: {error})"]
        return [label for name, label in zip(self.names, self.labels(), strict=True) if not _has(owner, name)]


def _memory_tls(connection: Any) -> object:
    """A TLS connection without a socket: with memory BIOs, as mitmproxy's TLS layers make them."""
    return connection(SSL.Context(SSL.TLS_METHOD))


def _stream_reader(reader: Any) -> object:
    """A stream reader on a loop of its own, as none may be running (its constructor only keeps the loop)."""
    loop = asyncio.new_event_loop()
    try:
        return reader(loop=loop)
    finally:
        loop.close()


_HTTP: Final = "mitmproxy.proxy.layers.http"
_HTTP1: Final = "mitmproxy.proxy.layers.http._http1"
_HTTP2: Final = "mitmproxy.proxy.layers.http._http2"

# Functions and constants of OpenSSL the relay calls through pyOpenSSL's private cffi bindings (`SSL._lib`).
_RELAY_OPENSSL: Final = (
    "BIO_get_mem_data",
    "BIO_new",
    "BIO_new_mem_buf",
    "BIO_read",
    "BIO_s_mem",
    "BIO_set_mem_eof_return",
    "BIO_write",
    "ERR_clear_error",
    "SSL_ERROR_WANT_READ",
    "SSL_MODE_ENABLE_PARTIAL_WRITE",
    "SSL_clear_mode",
    "SSL_get_error",
    "SSL_read",
    "SSL_set_bio",
    "SSL_set_mode",
    "SSL_write",
)

REQUIRED: Final[tuple[Required, ...]] = (
    # framing: the layer methods it wraps and what it calls of them, mitmproxy's error response and events (from
    # private modules; relay sends RequestData too), and the h2 library's buffer of a header block's CONTINUATION
    # frames and its HPACK limit (which framing sets: a rename would go unseen).
    Required(f"{_HTTP}._base", "", ("ReceiveHttp",)),
    Required(f"{_HTTP}._events", "", ("RequestData", "RequestEndOfMessage", "RequestHeaders", "RequestTrailers")),
    Required(_HTTP1, "Http1Client", ("send", "mark_done")),
    Required(_HTTP1, "Http1Server", ("read_headers", "done")),
    Required(_HTTP1, "", ("make_error_response",)),
    Required(_HTTP2, "Http2Server", ("_handle_event", "protocol_error")),
    Required(
        "h2.connection",
        "H2Connection",
        ("incoming_buffer._headers_buffer", "incoming_buffer._update_header_buffer", "decoder.max_header_list_size"),
        build=lambda connection: connection(),
    ),
    # relay: the HTTP layer method it overrides, the states it compares layers and streams with, the handler
    # method it wraps, h11's body readers (their count of what is left), pyOpenSSL's bindings and a connection's
    # OpenSSL objects, and what of asyncio's stream reader it takes over.
    Required(_HTTP, "HttpLayer", ("_handle_event", "event_to_child")),
    Required(
        _HTTP,
        "HttpStream",
        ("state_stream_request_body", "state_wait_for_response_headers", "state_stream_response_body"),
    ),
    Required(_HTTP1, "Http1Client", ("read_body",)),
    Required(_HTTP1, "Http1Server", ("read_body",)),
    Required("mitmproxy.proxy.layers.tls", "ServerTLSLayer", ("tls_interact",)),
    Required("mitmproxy.proxy.server", "ConnectionHandler", ("handle_connection", "server_event")),
    Required("mitmproxy.proxy.server", "ConnectionIO", ("reader", "writer")),
    Required("h11._readers", "", ("ContentLengthReader", "Http10Reader")),
    Required("h11._readers", "ContentLengthReader", ("_remaining",), build=lambda reader: reader(1)),
    Required("OpenSSL.SSL", "_lib", _RELAY_OPENSSL),
    Required("OpenSSL.SSL", "_ffi", ("NULL", "buffer", "new", "new_allocator")),
    Required("OpenSSL.SSL", "Connection", ("_ssl", "_into_ssl", "_from_ssl"), build=_memory_tls),
    Required("asyncio", "StreamReader", ("_maybe_resume_transport",)),
    Required("asyncio", "StreamReader", ("_eof", "_buffer"), build=_stream_reader),
    # lean: the mode a connection's SSL object is given, and mitmproxy's debug-only type check, a method of its
    # message data that exists only `if __debug__` (under -O there is none to drop).
    Required("OpenSSL.SSL", "_lib", ("SSL_set_mode", "SSL_MODE_RELEASE_BUFFERS")),
    *((Required("mitmproxy.http", "MessageData", ("__post_init__",)),) if __debug__ else ()),
)

# Whose versions the refusal quotes: what the requirements come from.
_DISTRIBUTIONS: Final = ("mitmproxy", "h11", "h2", "pyOpenSSL", "cryptography")


def missing() -> list[str]:
    """Every requirement of `REQUIRED` absent here (a module, an owner or an attribute, by its dotted path)."""
    return _absent(REQUIRED)


def apply() -> None:
    """Install every patch, once per process (idempotent); a RuntimeError naming what is missing, and nothing
    installed, if anything of `REQUIRED` is."""
    _refuse(missing())
    # Imported after the check: they read some of what it checks as they load.
    from boundary.proxy.patches import framing, lean, relay

    framing.apply()
    relay.read_large()
    lean.apply()


def _absent(required: Iterable[Required]) -> list[str]:
    found: list[str] = []
    for row in required:
        found += [label for label in row.absent() if label not in found]
    return found


def _refuse(absent: list[str]) -> None:
    if absent:
        raise RuntimeError(
            f"{_versions()} lacks what boundary's patches rely on: {', '.join(absent)}"
            " (boundary.proxy.patches needs updating for it)"
        )


def _versions() -> str:
    found = []
    for name in _DISTRIBUTIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"{found[0]} (with {', '.join(found[1:])}, Python {platform.python_version()})"


def _has(owner: object, path: str) -> bool:
    try:
        _lookup(owner, path)
    except AttributeError:
        return False
    return True


def _lookup(owner: object, path: str) -> object:
    for name in path.split(".") if path else ():
        owner = getattr(owner, name)
    return owner


# What the modules read as they load is checked before any of them is imported (see above).
_refuse(_absent(row for row in REQUIRED if row.build is None))
