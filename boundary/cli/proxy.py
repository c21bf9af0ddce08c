"""`boundary proxy`: the command line of `run.standalone`, the proxy without a jail."""

from __future__ import annotations

import sys

import click

from boundary.cli.run import LOG_OPTION, POLICY_OPTION, RESOLVE_OPTION, UPSTREAM_CA_OPTION

PROXY_EPILOG = """\b
Examples:
  boundary proxy --policy p.yaml --ca-cert /tmp/boundary-ca.pem
  HTTPS_PROXY=http://127.0.0.1:8080 SSL_CERT_FILE=/tmp/boundary-ca.pem agent
  boundary proxy --policy p.yaml --listen 127.0.0.1:3128 --log audit.jsonl --ca-cert ca.pem
  boundary proxy --policy p.yaml --listen 10.0.0.5:3128 --allow-remote \\
                 --token-file ~/.boundary-token --ca-cert ca.pem

\b
Weaker than `boundary run`: only clients that use the proxy (HTTPS_PROXY,
HTTP_PROXY, or their own setting) are checked; a process that ignores it is not
stopped. Use `run` wherever a namespace can be made. Listens on loopback unless
--allow-remote, which needs --token-file: an open proxy is never the default.

\b
Exit status: 0 after SIGINT or SIGTERM; 125 if boundary failed (bad policy,
bad option, the address in use, the proxy stopped).
"""


@click.command(epilog=PROXY_EPILOG, short_help="Serve the policy as an explicit HTTP(S) proxy, without a jail.")
@POLICY_OPTION
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="ADDRESS:PORT",
    help="Where to listen: loopback unless --allow-remote.",
)
@click.option(
    "--ca-cert",
    required=True,
    metavar="FILE",
    help="Write the proxy's CA certificate here (PEM), for clients to trust. Its key stays in memory.",
)
@LOG_OPTION
@RESOLVE_OPTION
@UPSTREAM_CA_OPTION
@click.option(
    "--token-file",
    metavar="FILE",
    help="Require this token (a file only you can read) as Proxy-Authorization: Bearer, or Basic with any user.",
)
@click.option("--allow-remote", is_flag=True, help="Listen beyond loopback (needs --token-file).")
def proxy(
    policy: str,
    listen: str,
    ca_cert: str,
    log: str | None,
    resolve: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    token_file: str | None,
    allow_remote: bool,
) -> None:
    """Serve the policy in FILE as an explicit HTTP/HTTPS proxy: CONNECT and absolute-form requests, TLS
    intercepted with a per-run CA, the same decisions, SSRF guard and audit lines as `boundary run`."""
    from boundary.run import standalone

    options = standalone.ProxyOptions(
        policy=policy,
        listen=listen,
        ca_cert=ca_cert,
        log=log,
        resolve=resolve,
        upstream_ca=upstream_ca,
        allow_remote=allow_remote,
        token_file=token_file,
    )
    sys.exit(standalone.serve(options))
