"""Fetch an image URL for the demo, server-side, without becoming a proxy into private networks.

Only http and https. The host name is resolved once and *every* address it resolves to must
be public (not loopback, private, link-local, multicast, reserved or unspecified) unless the
settings allow it; the connection then goes to that checked address (no second lookup that a
rebinding DNS server could answer differently). Redirects are followed by hand, each target
checked the same way. The whole fetch has one deadline and one size limit.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .settings import WebRequestError, too_large

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "emoji_privacy-web-demo"
ALLOW_HINT = "to allow this, start it with --allow-private-urls or --url-allow-network CIDR"
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="url-resolve")


@dataclass
class UrlPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    allow_private: bool = False
    allow_networks: list[IPNetwork] = field(default_factory=list)


def address_problem(ip: IPAddress) -> str | None:
    """Why the demo must not connect to ``ip`` by default, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address (this server itself)"
    if ip.is_link_local:
        return "a link-local address (such as a cloud metadata service)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private network address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def check_address(host: str, ip: IPAddress, policy: UrlPolicy) -> None:
    problem = address_problem(ip)
    if problem is None or policy.allow_private or any(ip in net for net in policy.allow_networks):
        return
    shown = f"{host} is" if host == str(ip) else f"{host} resolves to {ip}, which is"
    raise WebRequestError(403, f"refused: {shown} {problem}. The demo fetches only public addresses; {ALLOW_HINT}")


def resolve(host: str, port: int, timeout_s: float) -> list[IPAddress]:
    """All addresses of ``host`` (a literal address resolves to itself), within ``timeout_s``."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(timeout_s, 0.01))
    except concurrent.futures.TimeoutError as e:
        raise WebRequestError(504, f"looking up {host} took longer than {timeout_s:.0f} s") from e
    except (socket.gaierror, UnicodeError) as e:
        raise WebRequestError(400, f"cannot resolve host '{host}': check the URL") from e
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def checked_addresses(host: str, port: int, policy: UrlPolicy, timeout_s: float) -> list[IPAddress]:
    """Resolve ``host`` and check *every* address: a name with one public and one private address is refused."""
    addresses = resolve(host, port, timeout_s)
    for ip in addresses:
        check_address(host, ip, policy)
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host name in the Host header."""

    def __init__(self, host: str, port: int, ip: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_ip = str(ip)

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned_ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified against the URL's host name."""

    def __init__(self, host: str, port: int, ip: IPAddress, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.pinned_ip = str(ip)

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned_ip, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def _split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL, or a 400 saying what is wrong with it."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        shown = f"'{parts.scheme}:'" if parts.scheme else "no scheme"
        raise WebRequestError(400, f"only http:// and https:// URLs can be fetched (this one has {shown})")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise WebRequestError(400, "the URL has an invalid port") from e
    if not parts.hostname:
        raise WebRequestError(400, "the URL has no host name")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def fetch_image_bytes(url: str, policy: UrlPolicy) -> bytes:
    """GET ``url`` under ``policy``; returns the body or raises WebRequestError with the reason."""
    deadline = time.monotonic() + policy.timeout_s
    for hop in range(policy.max_redirects + 1):
        try:
            status, location, body = _get_once(url, policy, deadline)
        except WebRequestError as e:
            if hop:
                raise WebRequestError(e.status, f"redirect to {url}: {e.message}") from e
            raise
        if status not in REDIRECTS:
            return body
        if not location:
            raise WebRequestError(502, f"the server answered {status} (a redirect) without a Location")
        url = urljoin(url, location)
    raise WebRequestError(502, f"more than {policy.max_redirects} redirects: giving up")


def _get_once(url: str, policy: UrlPolicy, deadline: float) -> tuple[int, str, bytes]:
    scheme, host, port, path = _split(url)
    addresses = checked_addresses(host, port, policy, deadline - time.monotonic())
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addresses[0], timeout=max(deadline - time.monotonic(), 0.01))
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "image/jpeg,image/png,image/webp"})
        sock = conn.sock  # the response reads from it even after the connection lets go of it
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        resp = conn.getresponse()
        if resp.status in REDIRECTS:
            return resp.status, resp.getheader("Location", ""), b""
        if resp.status != 200:
            raise WebRequestError(502, f"{host} answered {resp.status} {resp.reason}")
        ctype = resp.getheader("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            raise WebRequestError(415, "the URL is a web page, not an image: use the address of the image itself "
                                       "(right-click the image, 'Copy image address')")
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > policy.max_bytes:
            raise too_large("the image at the URL", int(length), policy.max_bytes)
        body = bytearray()
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError
            sock.settimeout(max(deadline - now, 0.01))
            chunk = resp.read1(65536)
            if not chunk:
                return 200, "", bytes(body)
            body += chunk
            if len(body) > policy.max_bytes:
                raise too_large("the image at the URL", None, policy.max_bytes)
    except TimeoutError as e:
        raise WebRequestError(504, f"{host} did not deliver the image within {policy.timeout_s:g} s") from e
    except ssl.SSLError as e:
        raise WebRequestError(502, f"TLS with {host} failed ({e.reason or e}): the site's certificate is not valid "
                                   "for this name or not trusted") from e
    except ConnectionRefusedError as e:
        raise WebRequestError(502, f"{host} refused the connection on port {port}") from e
    except (OSError, http.client.HTTPException) as e:
        raise WebRequestError(502, f"fetching from {host} failed ({type(e).__name__}: {e})") from e
    finally:
        conn.close()
