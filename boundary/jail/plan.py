"""The jail's plan, as data: the nft ruleset, resolv.conf, hosts and the workload's environment.

Pure: nothing here touches the system. `jail.helper` applies the plan inside the new namespaces.

Theory of operation: the jail's only interface is `lo` and `local default dev lo` makes every IPv4 destination
local, so every `connect()` reaches the nat output chain below. TCP to anything outside 127/8 is redirected to
the proxy's socket, DNS (UDP and TCP port 53, any server) to the fake DNS; the filter chain drops everything else
(other UDP, ICMP, IPv6, anything not on `lo`) with named counters so a drop can be explained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROXY_PORT = 15001
DNS_PORT = 53
LOOPBACK = "127.0.0.1"

# Variables that name a CA bundle. Inside the jail each points at the combined bundle (system CAs + the run's
# CA), so every client that honours one of them trusts the proxy. The system bundle path itself is also
# overmounted, which covers tools that read the system store and variables nobody listed here.
CA_BUNDLE_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
    "HTTPLIB2_CA_CERTS",
    "NIX_SSL_CERT_FILE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "DENO_CERT",
    "BUN_CA_BUNDLE_PATH",
    "CARGO_HTTP_CAINFO",
    "npm_config_cafile",
)

# An outer proxy is unreachable from the jail and would only confuse clients: every connection already goes
# through boundary.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "FTP_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "ftp_proxy",
)

# Well-known system trust stores, most common first. The first that exists is overmounted in the jail.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS-like layouts
)


def nft_ruleset(proxy_port: int = PROXY_PORT, dns_port: int = DNS_PORT) -> str:
    """The jail's whole ruleset, applied atomically with `nft -f -` inside the jail's netns."""
    return f"""\
table ip boundary_nat {{
    chain output {{
        type nat hook output priority -100; policy accept;
        udp dport 53 redirect to :{dns_port}
        tcp dport 53 ip daddr != {LOOPBACK} redirect to :{dns_port}
        meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :{proxy_port}
    }}
}}
table inet boundary_filter {{
    counter dropped_not_lo {{ }}
    counter dropped_ipv6 {{ }}
    counter dropped_udp {{ }}
    counter dropped_icmp {{ }}
    counter dropped_other {{ }}
    chain output {{
        type filter hook output priority 0; policy drop;
        oifname != "lo" counter name dropped_not_lo drop
        ct state established,related accept
        meta nfproto ipv6 counter name dropped_ipv6 drop
        ip daddr 127.0.0.0/8 meta l4proto tcp accept
        ip daddr {LOOPBACK} udp dport {dns_port} accept
        meta l4proto udp counter name dropped_udp drop
        meta l4proto icmp counter name dropped_icmp drop
        counter name dropped_other drop
    }}
}}
"""


RESOLV_CONF = f"""\
# Written by boundary: every name is answered by the run's fake DNS; nothing leaves the machine.
nameserver {LOOPBACK}
options timeout:2 attempts:2
"""

# Only localhost: a host /etc/hosts entry must not send the workload straight to an address.
HOSTS = f"""\
{LOOPBACK}\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the workload runs as, in ids that are mapped identically inside the jail's user namespace."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str | None = None
    name: str | None = None


def id_map(inner_outer: Mapping[int, int]) -> str:
    """`/proc/PID/uid_map` text: one `inside outside 1` line per id."""
    return "".join(f"{inner} {outer} 1\n" for inner, outer in sorted(inner_outer.items()))


def user_maps(invoker: Identity, workload: Identity) -> tuple[str, str]:
    """uid_map and gid_map for the jail's user namespace: every id maps to itself.

    Identity maps keep file ownership and `id` truthful inside the jail and keep the workload from looking like
    root to tools that care. Rootless, the kernel allows exactly one line, the invoker's own id. As root, the
    helper keeps 0 and the workload's user and groups are added when it runs as someone else.
    """
    if invoker.uid != 0:
        return id_map({invoker.uid: invoker.uid}), id_map({invoker.gid: invoker.gid})
    uids = {0: 0, workload.uid: workload.uid}
    gids = {0: 0, workload.gid: workload.gid} | {g: g for g in workload.groups}
    return id_map(uids), id_map(gids)


def workload_env(base: Mapping[str, str], bundle_path: str, workload: Identity, invoker: Identity) -> dict[str, str]:
    """The workload's environment: the caller's, minus outer proxies, with every CA variable on our bundle."""
    env = {k: v for k, v in base.items() if k not in PROXY_VARIABLES}
    for name in CA_BUNDLE_VARIABLES:
        env[name] = bundle_path
    if workload.uid != invoker.uid and workload.home is not None:
        env["HOME"] = workload.home
        if workload.name is not None:
            env["USER"] = env["LOGNAME"] = workload.name
    return env
