"""mitmproxy's proxy layers driven in memory, as its own layer tests do: a client connection that is open
from the start, the options the layers read, and the loop that hands every command to an answer and every
event that answer makes back to the layer, until none is left."""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import connection, options
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode

type Answer = Callable[[commands.Command], list[events.Event]]


def http_layer(
    layer_class: type[HttpLayer] = HttpLayer, *, alpn: bytes | None = None, extra: dict[str, int] | None = None
) -> tuple[connection.Client, HttpLayer]:
    """An HTTP layer in regular (explicit proxy) mode on a new open client (ALPN `alpn`), with mitmproxy's
    proxy server options and `extra` integer options (name -> value) declared."""
    opts = options.Options()
    proxyserver.Proxyserver().load(opts)  # type: ignore[no-untyped-call]  # mitmproxy leaves it untyped
    for name, value in (extra or {}).items():
        opts.add_option(name, int, value, "")
    client = connection.Client(peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080), timestamp_start=1.0)
    client.state = connection.ConnectionState.OPEN
    client.alpn = alpn
    return client, layer_class(Context(client, opts), HTTPMode.regular)


def drive(target: layer.Layer, answer: Answer, *first: events.Event) -> None:
    """Feed `first` to the layer, then what `answer` makes of each command it yields, in order."""
    pending = list(first)
    while pending:
        for command in target.handle_event(pending.pop(0)):
            pending += answer(command)


def opened(command: commands.OpenConnection) -> list[events.Event]:
    """An upstream connection that opens at once."""
    command.connection.state = connection.ConnectionState.OPEN
    command.connection.timestamp_start = 1.0
    return [events.OpenConnectionCompleted(command, None)]
