"""Hearth's own certificate authority, made on first start, and the broker's TLS certificate.

The CA key never leaves `<data>/tls/` (mode 0600). Devices receive the CA certificate at pairing:
the person's confirmation of the code is what makes that first contact trustworthy, and from then
on the device can check that the broker it talks to is this Hearth. The broker certificate names
localhost, this machine's host name and addresses, and `broker.advertise_host`; it is remade when
that list grows (a new address) or a month before it expires.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.state.storage import atomic_write


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def as_tuple(self) -> tuple[str, str, str]:
        return (str(self.ca), str(self.cert), str(self.key))

    def ca_pem(self) -> str:
        return self.ca.read_text()


def local_names(extra: str = "") -> list[str]:
    names = {"localhost", "127.0.0.1", socket.gethostname()}
    for addrs in psutil.net_if_addrs().values():
        names.update(a.address for a in addrs if a.family == socket.AF_INET)
    if extra:
        names.add(extra)
    return sorted(names)


def _write(path: Path, data: bytes, private: bool) -> None:
    atomic_write(path, data, path.parent.parent, mode=0o600 if private else 0o644)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _cert_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def _make_ca(files: TlsFiles, now: datetime.datetime) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hearth CA {socket.gethostname()}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650 * 2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(files.ca.with_name("ca.key"), _key_pem(key), private=True)
    _write(files.ca, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return key, cert


def ensure(directory: Path, names: list[str]) -> TlsFiles:
    """The CA and a broker certificate for `names`, made when missing, stale or short of a name."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(directory / "ca.pem", directory / "broker.pem", directory / "broker.key")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key_path = directory / "ca.key"
    if files.ca.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    else:
        ca_key, ca_cert = _make_ca(files, now)
        files.cert.unlink(missing_ok=True)
    if files.cert.exists() and files.key.exists():
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        fresh = cert.not_valid_after_utc - now > datetime.timedelta(days=30)
        if fresh and set(names) <= _cert_names(cert) and cert.issuer == ca_cert.subject:
            return files
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "hearth")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(files.key, _key_pem(key), private=True)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return files
