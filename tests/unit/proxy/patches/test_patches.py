"""Specification of the fence (boundary/proxy/patches/__init__.py): `REQUIRED` names every private attribute the
patches rely on, this mitmproxy has each of them, `apply()` installs every patch once, and refuses, naming what
is missing, when an upgrade took one away.

An upgrade is simulated by taking one requirement away for one test (monkeypatch restores it), the way an
upgrade would: a class attribute, a module attribute, a module, an instance attribute renamed, a constructor
changed.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import h2.connection
import h11._readers
import pytest
from mitmproxy import http
from mitmproxy.proxy import events, server
from mitmproxy.proxy.layers.http import HttpStream, _http1
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Server
from OpenSSL import SSL

from boundary.policy.model import DEFAULT_REQUEST_HEAD
from boundary.proxy import patches
from tests.support.layers import drive, http_layer

PATCHES = Path(patches.__file__).parent
LABELS = [label for row in patches.REQUIRED for label in row.labels()]


def test_this_mitmproxy_has_everything_the_patches_rely_on() -> None:
    """The loud failure of an upgrade of mitmproxy, h11, h2, pyOpenSSL (or its cryptography) or Python that
    dropped or renamed anything the patches use."""
    assert patches.missing() == []


def test_the_table_names_the_patches_wrap_and_the_private_state_they_touch() -> None:
    """What the patches replace, and the private state a rename of which would go unseen (they set it), are
    among the requirements."""
    for label in [
        "mitmproxy.proxy.layers.http._http1.Http1Client.send",
        "mitmproxy.proxy.layers.http._http1.Http1Server.read_headers",
        "mitmproxy.proxy.layers.http._http2.Http2Server._handle_event",
        "mitmproxy.proxy.layers.http._http2.Http2Server.protocol_error",
        "mitmproxy.proxy.layers.http._http1.make_error_response",
        "mitmproxy.proxy.server.ConnectionHandler.handle_connection",
        "mitmproxy.http.MessageData.__post_init__",
        "h2.connection.H2Connection().decoder.max_header_list_size",
        "h2.connection.H2Connection().incoming_buffer._update_header_buffer",
        "OpenSSL.SSL.Connection()._into_ssl",
        "OpenSSL.SSL._lib.SSL_MODE_RELEASE_BUFFERS",
        "asyncio.StreamReader()._buffer",
    ]:
        assert label in LABELS


# --- every private name the patch modules use is in the table -------------------------------------------------

# Names the patch modules bind to private objects, and where REQUIRED finds those.
PRIVATE_OBJECTS = {
    "_lib": "OpenSSL.SSL._lib",
    "lib": "OpenSSL.SSL._lib",
    "_ffi": "OpenSSL.SSL._ffi",
    "_http1": "mitmproxy.proxy.layers.http._http1",
}


def _own_names(tree: ast.Module) -> set[str]:
    """The attributes a module defines itself: its functions, classes and methods, and what it sets on `self`
    (its own classes' state, and its marks on mitmproxy's layers)."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
            own.add(node.attr)
    return own


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _private_uses(source: str) -> list[str]:
    """The private names a module uses of others: what it imports from a private module, the attributes it
    reaches on a private object, and every underscore attribute not its own."""
    tree = ast.parse(source)
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and any(_private(part) for part in node.module.split(".")):
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in PRIVATE_OBJECTS:
                found.append(f"{PRIVATE_OBJECTS[node.value.id]}.{node.attr}")
            elif _private(node.attr) and node.attr not in own:
                found.append(node.attr)
    return found


def _in_table(use: str) -> bool:
    if "." not in use:  # an attribute: the last part of some requirement, on whatever owner
        return any(use in label.replace("()", "").split(".") for label in LABELS)
    return any(label == use or label.replace("()", "").startswith(use + ".") for label in LABELS)


@pytest.mark.parametrize("module", sorted(p.name for p in PATCHES.glob("*.py") if p.name != "__init__.py"))
def test_every_private_name_a_patch_uses_is_required(module: str) -> None:
    """A private name used in a patch module but absent from `REQUIRED` would escape the check: none is."""
    uses = _private_uses((PATCHES / module).read_text())
    assert uses, "the scan finds the private uses"
    assert [use for use in uses if not _in_table(use)] == []


# --- apply ------------------------------------------------------------------------------------------------------


def _installed() -> dict[str, object]:
    """What the patches replace, as it is now."""
    return {
        "Http1Client.send": Http1Client.send,
        "Http1Server.read_headers": Http1Server.read_headers,
        "Http2Server._handle_event": Http2Server._handle_event,
        "Http2Server.protocol_error": Http2Server.protocol_error,
        "ConnectionHandler.handle_connection": server.ConnectionHandler.handle_connection,
        "MessageData.__post_init__": vars(http.MessageData)["__post_init__"],
    }


def test_apply_installs_boundarys_patches_and_twice_changes_nothing() -> None:
    """Every replaced method is boundary's (the session applied them), and applying again wraps nothing twice."""
    before = _installed()
    assert all(getattr(patch, "__module__", "").startswith("boundary.proxy.patches.") for patch in before.values())
    patches.apply()
    assert _installed() == before
    assert patches.missing() == []  # what the patches installed still meets the requirements


class _RenamedCount(h11._readers.ContentLengthReader):
    """A body reader of an h11 that renamed its count of what is left."""

    def __init__(self, length: int) -> None:
        self._left = length


class _H2ConnectionOfAnotherSignature(h2.connection.H2Connection):
    def __init__(self, required: object) -> None:
        super().__init__()


UPGRADES: dict[str, tuple[Any, str]] = {
    "a wrapped method": (
        lambda mp: mp.delattr(HttpStream, "state_stream_response_body"),
        "mitmproxy.proxy.layers.http.HttpStream.state_stream_response_body",
    ),
    "a module function": (
        lambda mp: mp.delattr(_http1, "make_error_response"),
        "mitmproxy.proxy.layers.http._http1.make_error_response",
    ),
    "asyncio's private method": (
        lambda mp: mp.delattr(asyncio.StreamReader, "_maybe_resume_transport"),
        "asyncio.StreamReader._maybe_resume_transport",
    ),
    "pyOpenSSL's bindings": (lambda mp: mp.delattr(SSL, "_ffi"), "OpenSSL.SSL._ffi"),
    "a private module": (lambda mp: mp.setitem(sys.modules, "h11._readers", None), "h11._readers"),
    "an instance attribute": (
        lambda mp: mp.setattr(h11._readers, "ContentLengthReader", _RenamedCount),
        "h11._readers.ContentLengthReader()._remaining",
    ),
    "a constructor": (
        lambda mp: mp.setattr(h2.connection, "H2Connection", _H2ConnectionOfAnotherSignature),
        "h2.connection.H2Connection() (TypeError: ",
    ),
}


@pytest.mark.parametrize("upgrade", list(UPGRADES))
def test_apply_refuses_naming_what_an_upgrade_removed(monkeypatch: pytest.MonkeyPatch, upgrade: str) -> None:
    """`missing()` names it, and `apply()` raises a RuntimeError that names it and the installed mitmproxy, so
    that boundary refuses to start with a message saying why."""
    remove, label = UPGRADES[upgrade]
    remove(monkeypatch)
    assert [found for found in patches.missing() if found.startswith(label)] != []
    with pytest.raises(RuntimeError) as raised:
        patches.apply()
    message = str(raised.value)
    assert label in message
    assert f"mitmproxy {importlib.metadata.version('mitmproxy')}" in message


REFUSE_IN_A_FRESH_PROXY = """
import boundary.proxy.master
from boundary.proxy import patches
from mitmproxy import http
from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http import HttpStream
from mitmproxy.proxy.layers.http._http1 import Http1Client

del HttpStream.state_stream_response_body
try:
    patches.apply()
except RuntimeError:
    pass
print(Http1Client.send.__module__, server.ConnectionHandler.handle_connection.__module__)
print(http.MessageData.__post_init__.__module__)
"""


def test_apply_installs_nothing_when_it_refuses() -> None:
    """Half-patched is no state the proxy can be in: a refusal comes before the first patch."""
    done = subprocess.run(
        [sys.executable, "-c", REFUSE_IN_A_FRESH_PROXY], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mitmproxy.proxy.layers.http._http1", "mitmproxy.proxy.server", "mitmproxy.http"]


REFUSE_AT_IMPORT = """
from mitmproxy.proxy.layers.http._http2 import Http2Connection

del Http2Connection.protocol_error  # what Http2Server inherits, and framing reads as it loads
try:
    import boundary.proxy.patches.framing
except RuntimeError as e:
    print(e)
"""


def test_importing_a_patch_module_after_such_an_upgrade_names_what_is_missing() -> None:
    """The modules read what they wrap as they load: importing one checks first, so the message is the same
    rather than an AttributeError from inside the module."""
    done = subprocess.run(
        [sys.executable, "-c", REFUSE_AT_IMPORT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "rely on: mitmproxy.proxy.layers.http._http2.Http2Server.protocol_error (" in done.stdout


# --- the instances the table looks on --------------------------------------------------------------------------


def test_the_h2_connection_checked_is_the_kind_mitmproxy_serves_with() -> None:
    """REQUIRED looks for the h2 library's header-block buffer and HPACK limit on an `H2Connection`; mitmproxy's
    HTTP/2 server layer holds one, with the limit the patch set (the policy's default here)."""
    client, layer = http_layer(alpn=b"h2")
    drive(layer, lambda command: [], events.Start())
    h2_server = layer.connections[client]
    assert type(h2_server) is Http2Server
    assert isinstance(h2_server.h2_conn, h2.connection.H2Connection)
    assert h2_server.h2_conn.decoder.max_header_list_size == DEFAULT_REQUEST_HEAD
    assert isinstance(h2_server.h2_conn.incoming_buffer._headers_buffer, list)
