"""Mutual TLS between the gateway and the services, from one internal CA, reloaded from files.

Every component holds three PEM files: the internal CA (`INTERNAL_TLS_CA_FILE`, what a peer must
be signed by), its own certificate chain and its private key. A service accepts only clients
presenting a certificate of that CA; the gateway accepts only a service certificate of that CA
naming the host it dialled. The identity JWT stays the authorization on top: TLS says "this is
one of our components", the token says who the call is for.

Rotation needs no code change and no restart: the server asks for its certificate configuration
on every new handshake (`scout_kit.grpc_server`) and gets a new one when the files changed;
clients re-create their channels when the files change (`scout_kit.grpc_client`). Both notice a
change through `CertificateFiles.stamp`.
A half-written rotation (a certificate that does not match the key, or no longer chains to the
CA) is refused with a log line and the previous configuration stays in use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

CA_VARIABLE = "INTERNAL_TLS_CA_FILE"
CERT_VARIABLE = "INTERNAL_TLS_CERT_FILE"
KEY_VARIABLE = "INTERNAL_TLS_KEY_FILE"


class TlsFilesError(ValueError):
    """The files do not make a usable configuration; the message says which and why."""


@dataclass(frozen=True)
class TlsMaterial:
    """The three files' contents, checked to belong together."""

    ca: bytes
    certificate_chain: bytes
    private_key: bytes


# What identifies one version of the files: a Kubernetes Secret update swaps a symlink, a
# rewrite changes the size or modification time; either changes this.
_Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class CertificateFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def named(self) -> tuple[tuple[str, Path], ...]:
        return (
            (CA_VARIABLE, self.ca_file),
            (CERT_VARIABLE, self.cert_file),
            (KEY_VARIABLE, self.key_file),
        )

    def stamp(self) -> _Stamp:
        stamps = []
        for _, path in self.named():
            try:
                info = os.stat(path)
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((info.st_ino, info.st_size, info.st_mtime_ns))
        return tuple(stamps)

    def load(self) -> TlsMaterial:
        """Read and check the files: the key matches the first certificate, which is signed by
        one of the CA file's certificates and currently valid."""
        contents: dict[str, bytes] = {}
        for variable, path in self.named():
            try:
                contents[variable] = path.read_bytes()
            except OSError as exc:
                raise TlsFilesError(f"{variable}: cannot read {path}: {exc.strerror}") from None
        material = TlsMaterial(
            contents[CA_VARIABLE], contents[CERT_VARIABLE], contents[KEY_VARIABLE]
        )
        check_material(material)
        return material


def _certificates(variable: str, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsFilesError(f"{variable} must hold PEM certificates") from None
    return certificates


def check_material(material: TlsMaterial) -> None:
    authorities = _certificates(CA_VARIABLE, material.ca)
    leaf = _certificates(CERT_VARIABLE, material.certificate_chain)[0]
    try:
        key = serialization.load_pem_private_key(material.private_key, password=None)
    except (ValueError, TypeError):
        raise TlsFilesError(f"{KEY_VARIABLE} must hold an unencrypted PEM private key") from None
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise TlsFilesError(f"{KEY_VARIABLE} is not the key of the certificate in {CERT_VARIABLE}")
    if not any(_signed_by(leaf, authority) for authority in authorities):
        raise TlsFilesError(f"{CERT_VARIABLE} is not signed by a CA in {CA_VARIABLE}")


def _signed_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def server_name(target: str) -> str:
    """The host name a service's certificate must carry for `target`: `host` of host:port and
    of dns:///host:port, the first host of an ipv4:/ipv6: list."""
    rest = target
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if rest.startswith(scheme):
            rest = rest.removeprefix(scheme)
            break
    first = rest.split(",", 1)[0]
    host = first.rpartition(":")[0] if ":" in first else first
    return host.strip("[]") or first
