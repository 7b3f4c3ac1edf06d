"""Outbound HTTP for alerts, safe against SSRF: the host is resolved once, every address it
resolves to must be public (unless private destinations are allowed), and the connection goes
to that checked address, so a DNS answer that changes between check and connect cannot
redirect it. Redirects are not followed; timeouts are short; bodies are read bounded."""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SNIPPET_BYTES = 1024
# Not global, but worth naming: the cloud metadata services and carrier-grade NAT.
BLOCKED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "100.64.0.0/10", "fd00:ec2::/32", "0.0.0.0/8")]


class Refused(ValueError):
    """A destination we will not connect to (the message says why)."""


@dataclass
class Response:
    status: int
    snippet: str
    headers: dict[str, str] = field(default_factory=dict)
    duration_ms: int = 0


def is_blocked(address: str) -> bool:
    """Loopback, private, link-local, metadata, multicast, reserved: anything not public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (not ip.is_global or ip.is_multicast
            or any(ip in network for network in BLOCKED_NETWORKS if network.version == ip.version))


def check_url(url: str) -> tuple[str, str, int]:
    """The URL's scheme, host and port, or Refused when it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Refused("must not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int, allow_private: bool) -> str:
    """One address to connect to; Refused if the name does not resolve or any address is private."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the name
        raise Refused(f"host {host!r} does not resolve ({exc})") from None
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        blocked = [a for a in addresses if is_blocked(a)]
        if blocked:
            raise Refused(f"host {host!r} resolves to a private or reserved address "
                          f"({blocked[0]}); set CORRELATED_ALLOW_PRIVATE_DESTINATIONS=true to "
                          "allow internal destinations")
    return addresses[0]


def _connection(scheme: str, host: str, port: int, address: str,
                timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    # Connect to the checked address; TLS still verifies the certificate for `host` (SNI).
    conn._create_connection = (  # type: ignore[attr-defined]
        lambda _addr, *args: socket.create_connection((address, port), *args))
    return conn


def post(url: str, body: bytes, headers: dict[str, str], timeout: float,
         allow_private: bool) -> Response:
    """POST `body` to `url`; raises Refused, OSError (connection, timeout) or HTTPException."""
    scheme, host, port = check_url(url)
    address = resolve(host, port, allow_private)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.perf_counter()
    conn = _connection(scheme, host, port, address, timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "correlated-alerts/1", **headers})
        answer = conn.getresponse()
        snippet = answer.read(SNIPPET_BYTES).decode("utf-8", "replace")
        return Response(answer.status, snippet, {k.lower(): v for k, v in answer.getheaders()},
                        int((time.perf_counter() - started) * 1000))
    finally:
        conn.close()
