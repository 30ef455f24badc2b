"""Certificates for development and small deployments (made with `cryptography`):

- the development CA and the gateway's public certificate for `localhost`, which clients verify
  instead of switching verification off;
- the internal CA and one certificate per component for mutual TLS between the gateway and the
  services (`scout_kit.tls`): the gateway's is a client certificate, each service's serves its
  names and may also be presented as a client (its container healthcheck).

Never for production's public side; the internal set is fine wherever its CA key stays private.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.jwt_keys import write_private
from scout_kit.tls import CertificateFiles, TlsMaterial

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Components of mutual TLS, and the host names each service answers to besides loopback
# (compose service names; in Kubernetes also `<name>.<namespace>.svc`, see scripts/internal_certs).
INTERNAL_SERVICES = ("auth", "keys", "ingest")
GATEWAY = "gateway"
# Renew a leaf certificate this long before it expires.
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class DevCertificates:
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(common_name: str, days: int = 3650) -> Authority:
    now = _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def _general_names(names: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def issue(
    authority: Authority,
    common_name: str,
    names: Sequence[str],
    *,
    server: bool,
    client: bool,
    days: int = 825,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate for `names` (host names or IP addresses), for serving and/or as a
    client certificate."""
    now = _now()
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(names)), critical=False
        )
    return builder.sign(authority.key, hashes.SHA256()), key


def write_authority(authority: Authority, cert_path: Path, key_path: Path) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(_pem(authority.certificate))
    _write_key(key_path, authority.key)


def load_authority(cert_path: Path, key_path: Path) -> Authority | None:
    """The CA stored at these paths, or None when either is missing or unreadable."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return Authority(certificate, key)


def write_leaf(
    certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _write_key(key_path, key)
    cert_path.write_bytes(_pem(certificate))


def needs_renewal(cert_path: Path, authority: Authority) -> bool:
    """Missing, unreadable, not signed by `authority`, or expiring within RENEW_BEFORE."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return True
    if certificate.issuer != authority.name:
        return True
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return True
    return certificate.not_valid_after_utc - _now() < RENEW_BEFORE


def ensure_dev_certificates(
    directory: Path, hostnames: tuple[str, ...] = ("localhost",)
) -> DevCertificates:
    """Create the development CA and the gateway's server certificate in `directory` unless
    they already exist."""
    directory.mkdir(parents=True, exist_ok=True)
    result = DevCertificates(
        directory / "dev-ca.pem", directory / "gateway.pem", directory / "gateway-key.pem"
    )
    if all(p.exists() for p in (result.ca_cert, result.server_cert, result.server_key)):
        return result
    authority = new_authority("Server Scout development CA")
    certificate, key = issue(
        authority, hostnames[0], [*hostnames, "127.0.0.1", "::1"], server=True, client=False
    )
    result.ca_cert.write_bytes(_pem(authority.certificate))
    write_leaf(certificate, key, result.server_cert, result.server_key)
    return result


@dataclass(frozen=True)
class ComponentCertificate:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class InternalCertificates:
    """The internal CA (`ca_file`; its key beside it) and a certificate per component."""

    ca_file: Path
    ca_key_file: Path
    components: dict[str, ComponentCertificate]

    def of(self, component: str) -> ComponentCertificate:
        return self.components[component]

    def files(self, component: str) -> CertificateFiles:
        certificate = self.components[component]
        return CertificateFiles(self.ca_file, certificate.cert_file, certificate.key_file)

    def material(self, component: str) -> TlsMaterial:
        return self.files(component).load()


def component_names(component: str, extra_names: Sequence[str] = ()) -> list[str]:
    if component == GATEWAY:
        return []
    return [component, *extra_names, *LOOPBACK_NAMES]


def ensure_internal_certificates(
    directory: Path,
    services: Sequence[str] = INTERNAL_SERVICES,
    extra_names: Mapping[str, Sequence[str]] | None = None,
) -> InternalCertificates:
    """The internal CA and a certificate for the gateway and each service in `directory`; made
    when missing, and a leaf again when it expires within RENEW_BEFORE or the CA changed."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_file, ca_key_file = directory / "internal-ca.pem", directory / "internal-ca-key.pem"
    authority = load_authority(ca_file, ca_key_file)
    if authority is None:
        authority = new_authority("Server Scout internal CA")
        write_authority(authority, ca_file, ca_key_file)
    components: dict[str, ComponentCertificate] = {}
    for component in (GATEWAY, *services):
        paths = ComponentCertificate(
            directory / f"{component}.pem", directory / f"{component}-key.pem"
        )
        components[component] = paths
        if paths.key_file.exists() and not needs_renewal(paths.cert_file, authority):
            continue
        names = component_names(component, (extra_names or {}).get(component, ()))
        certificate, key = issue(
            authority, f"scout-{component}", names, server=component != GATEWAY, client=True
        )
        write_leaf(certificate, key, paths.cert_file, paths.key_file)
    return InternalCertificates(ca_file, ca_key_file, components)
