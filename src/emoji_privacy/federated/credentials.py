"""Credentials for a Flower deployment across machines: TLS for the SuperLink, a key pair per robot.

A fleet needs two kinds: a certificate authority and a server certificate so that every robot and the
operator know they talk to the real aggregator (TLS), and one SSH-format EC key pair per robot so that
the SuperLink admits only robots the operator registered (``flwr supernode register ROBOT.pub``).
Flower's docs make them with a shell script and OpenSSL; this writes the same files from Python
(``cryptography``, already a Flower dependency), so the loopback deployment in the tests runs with
exactly the files and flags a fleet uses.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = ["Credentials", "write_credentials", "NODE_NAME"]

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""What a robot's name may be: it names its key files."""


@dataclass
class Credentials:
    """The files ``write_credentials`` wrote (None / empty for the kinds it was not asked for)."""

    folder: Path
    ca_cert: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    node_keys: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # name -> (private key, public key)


def _write_private(path: Path, data: bytes) -> None:
    """A secret file readable by its owner only, created so (never world-readable for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _subject_names(hosts: list[str]) -> list:
    from cryptography import x509

    names = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", h):
                raise ConfigError(f"--host {h!r} is neither an IP address nor a DNS name; give the name or address "
                                  "the robots use to reach the SuperLink") from None
            names.append(x509.DNSName(h))
    return names


def _check_request(folder: Path, hosts: list[str], nodes: list[str], days: int) -> list:
    """ConfigError for a request that cannot be met, before anything is written; the server certificate's
    subject names otherwise."""
    if not hosts and not nodes:
        raise ConfigError("nothing to make: give --host NAME (the SuperLink's certificate) and/or --nodes ROBOT...")
    if days < 1:
        raise ConfigError(f"--days must be >= 1, not {days}")
    bad = [n for n in nodes if not NODE_NAME.match(n)]
    if bad:
        raise ConfigError(f"robot names {bad} are not usable as file names; use letters, digits, '.', '_', '-'")
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"robot names repeat in {nodes}; each robot needs its own key pair")
    san = _subject_names(hosts)  # a bad name is refused before anything is written
    targets = (["ca.crt", "ca.key", "server.pem", "server.key"] if hosts else []) + \
        [f"{n}{s}" for n in nodes for s in (".key", ".pub")]
    existing = [t for t in targets if (folder / t).exists()]
    if existing:
        raise ConfigError(f"{folder} already holds {', '.join(existing)}; credentials are never overwritten "
                          "(robots may trust them): choose another folder or other robot names")
    return san


def _write_ca_and_server(creds: Credentials, hosts: list[str], san: list, days: int) -> None:
    """A CA (``ca.crt``, ``ca.key``) and the SuperLink's certificate it signs for ``hosts`` (``server.pem``,
    ``server.key``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = creds.folder
    pem, pkcs8, none = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=days)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (x509.CertificateBuilder().subject_name(name("emoji_privacy federation CA")).issuer_name(
        name("emoji_privacy federation CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    creds.ca_cert, creds.server_cert = folder / "ca.crt", folder / "server.pem"
    creds.server_key = folder / "server.key"
    creds.ca_cert.write_bytes(ca.public_bytes(pem))
    _write_private(folder / "ca.key", ca_key.private_bytes(pem, pkcs8, none))
    creds.server_cert.write_bytes(cert.public_bytes(pem))
    _write_private(creds.server_key, key.private_bytes(pem, pkcs8, none))


def _write_node_key(creds: Credentials, node: str) -> None:
    """A robot's SSH-format EC key pair (``NODE.key``, ``NODE.pub``): Flower's SuperNode authentication takes EC
    keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    k = ec.generate_private_key(ec.SECP384R1())
    priv, pub = creds.folder / f"{node}.key", creds.folder / f"{node}.pub"
    _write_private(priv, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()))
    pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH) + f" {node}\n".encode())
    creds.node_keys[node] = (priv, pub)


def write_credentials(folder: Path, hosts: list[str] | None = None, nodes: list[str] | None = None,
                      days: int = 365) -> Credentials:
    """Write a CA and a SuperLink certificate valid for ``hosts`` (when given), and a key pair per name in
    ``nodes``, into ``folder``. Never overwrites: an existing file is a ConfigError, so a CA that robots
    already trust cannot be replaced by accident."""
    hosts, nodes, folder = list(hosts or []), list(nodes or []), Path(folder)
    san = _check_request(folder, hosts, nodes, days)
    folder.mkdir(parents=True, exist_ok=True)
    creds = Credentials(folder)
    if hosts:
        _write_ca_and_server(creds, hosts, san, days)
    for n in nodes:
        _write_node_key(creds, n)
    return creds
