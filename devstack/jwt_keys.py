"""The development Ed25519 key pair for internal identity tokens: made once, then kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scout_kit.identity import generate_keypair


@dataclass(frozen=True)
class JwtKeyFiles:
    private_key: Path
    public_key: Path


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where it is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that already existed


def ensure_jwt_keypair(directory: Path) -> JwtKeyFiles:
    """The gateway's signing key (mode 0600) and the services' verification key in `directory`,
    generated together unless both already exist."""
    files = JwtKeyFiles(
        directory / "internal-jwt-private.pem", directory / "internal-jwt-public.pem"
    )
    if files.private_key.is_file() and files.public_key.is_file():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    private_pem, public_pem = generate_keypair()
    write_private(files.private_key, private_pem)
    files.public_key.write_text(public_pem)
    return files
