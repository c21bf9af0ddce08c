"""Specification of the lean proxy (boundary/proxy/patches/lean.py): mitmproxy's debug-only type checks dropped
with asserts kept, large buffers kept on the heap, idle TLS connections handing their buffers back.

The first two change the whole process, so each is checked in a fresh interpreter against a control without it.
"""

from __future__ import annotations

import subprocess
import sys

from OpenSSL import SSL

from boundary.proxy.patches import lean

APPLY = "from boundary.proxy.patches import lean\nlean.apply()"


def run_python(*options: str, code: str) -> str:
    done = subprocess.run([sys.executable, *options, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


BUILD_A_MISTYPED_REQUEST = """
{setup}
from mitmproxy import http
try:
    http.Request("h", 1, b"GET", b"https", b"h", b"/", b"HTTP/1.1", http.Headers(), b"", None, "not a time", None)
except TypeError:
    print("checked")
else:
    print("unchecked")
"""


def test_mitmproxy_type_checks_messages_only_in_debug_mode() -> None:
    """The control: stock mitmproxy checks each field's type on every request it builds, and only because
    __debug__ is on (`python -O` drops the check)."""
    assert run_python(code=BUILD_A_MISTYPED_REQUEST.format(setup="")) == "checked"
    assert run_python("-O", code=BUILD_A_MISTYPED_REQUEST.format(setup="")) == "unchecked"


def test_lean_drops_the_debug_only_type_check_and_keeps_asserts() -> None:
    """Applied, the check is gone as under -O, while asserts, which -O would also drop, still run."""
    setup = f"{APPLY}\ntry:\n    assert False\nexcept AssertionError:\n    print('asserts on')"
    assert run_python(code=BUILD_A_MISTYPED_REQUEST.format(setup=setup)).split() == ["asserts", "on", "unchecked"]


def test_lean_applies_under_optimization_too() -> None:
    """Under -O mitmproxy has no check to drop; applying changes nothing there and does not fail."""
    assert run_python("-O", code=BUILD_A_MISTYPED_REQUEST.format(setup=APPLY)) == "unchecked"


# Page faults of 100 rounds of two 1 MiB buffers allocated and freed together, as a large upload's reads are.
COUNT_BUFFER_FAULTS = """
{setup}
import resource
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    first, second = bytearray(1 << 20), bytearray(1 << 20)
    del first, second
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


def test_lean_keeps_large_buffers_instead_of_faulting_them_in_anew() -> None:
    """The control maps each buffer fresh (a fault per 4 KiB page: ~256 per buffer); applied, the heap serves
    them again."""
    assert int(run_python(code=COUNT_BUFFER_FAULTS.format(setup=""))) > 100 * 256
    assert int(run_python(code=COUNT_BUFFER_FAULTS.format(setup=APPLY))) < 100 * 16


def _mode(connection: SSL.Connection) -> int:
    lib = SSL._lib  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings: no public get_mode
    return int(lib.SSL_set_mode(connection._ssl, 0))  # SSL_set_mode ORs bits in and returns the mode


def test_a_connection_released_hands_its_buffers_back_when_idle() -> None:
    """`release_idle_buffers` sets SSL_MODE_RELEASE_BUFFERS on that connection alone, not on its context's
    other connections."""
    release = SSL._lib.SSL_MODE_RELEASE_BUFFERS  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings
    context = SSL.Context(SSL.TLS_METHOD)
    released, other = SSL.Connection(context), SSL.Connection(context)
    assert not _mode(released) & release
    lean.release_idle_buffers(released)
    assert _mode(released) & release
    assert not _mode(other) & release
