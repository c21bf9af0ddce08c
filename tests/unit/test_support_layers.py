"""Specification of the in-memory layer driver (tests/support/layers.py): a request fed to the client side
comes out at the upstream, the connection opened through `opened`."""

from __future__ import annotations

from mitmproxy import connection
from mitmproxy.proxy import commands, events

from tests.support.layers import drive, http_layer, opened


def test_a_request_fed_to_the_client_reaches_the_upstream_through_an_opened_connection() -> None:
    client, layer = http_layer(extra={"boundary_test_option": 7})
    assert layer.context.options.boundary_test_option == 7 and client.state is connection.ConnectionState.OPEN
    sent: list[bytes] = []
    seen: list[type] = []

    def answer(command: commands.Command) -> list[events.Event]:
        seen.append(type(command))
        if isinstance(command, commands.OpenConnection):
            return opened(command)
        if isinstance(command, commands.SendData) and command.connection is not client:
            sent.append(command.data)
        if isinstance(command, commands.StartHook):
            return [events.HookCompleted(command)]
        return []

    drive(layer, answer, events.Start())
    drive(
        layer,
        answer,
        events.DataReceived(client, b"GET http://upstream.test/x HTTP/1.1\r\nHost: upstream.test\r\n\r\n"),
    )
    assert commands.OpenConnection in seen
    assert b"".join(sent).startswith(b"GET /x HTTP/1.1\r\n")
