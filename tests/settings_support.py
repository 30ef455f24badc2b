"""Reading from the code which environment variables a program's settings require."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from auth_service.settings import Settings as AuthSettings
from devstack.certs import ensure_internal_certificates
from gateway.settings import Settings as GatewaySettings
from ingest_service.settings import Settings as IngestSettings
from key_service.settings import Settings as KeySettings
from scout_admin.settings import Settings as AdminSettings
from scout_kit.settings import SettingsError

FromEnv = Callable[[Mapping[str, str]], object]
# Module run by `python -m` (or the scout-admin command) -> how it reads its settings.
SETTINGS_BY_MODULE: dict[str, FromEnv] = {
    "auth_service": AuthSettings.from_env,
    "key_service": KeySettings.from_env,
    "ingest_service": IngestSettings.from_env,
    "gateway": GatewaySettings.from_env,
    "scout_admin": AdminSettings.from_env,
}

_VARIABLE = re.compile(r"^([A-Z][A-Z0-9_]*)")


def _guess(name: str, message: str, tmp: Path, keypair: tuple[str, str]) -> str:
    """A value that satisfies what the error asked for (the caller retries with the next)."""
    if name.startswith("INTERNAL_TLS_"):
        internal = ensure_internal_certificates(tmp / "internal-tls")
        return str(
            {
                "INTERNAL_TLS_CA_FILE": internal.ca_file,
                "INTERNAL_TLS_CERT_FILE": internal.of("keys").cert_file,
                "INTERNAL_TLS_KEY_FILE": internal.of("keys").key_file,
            }[name]
        )
    pem = keypair[0] if "PRIVATE" in name else keypair[1]
    if name.endswith("_FILE"):
        path = tmp / name.lower()
        path.write_text(pem)
        return str(path)
    if "PEM" in message or name.endswith("_KEY"):
        return pem
    scheme = re.search(r"URL starting with (\w+)", message)
    if scheme:
        return f"{scheme.group(1)}://localhost/x"
    if "https://" in message:
        return "https://localhost"
    if name.endswith("_ADDR"):
        return "127.0.0.1:1"
    return "x"


def required_variables(from_env: FromEnv, tmp: Path, keypair: tuple[str, str]) -> set[str]:
    """The variables `from_env` cannot do without: start from an empty environment and add a
    value for each variable an error names, until the settings load."""
    env: dict[str, str] = {}
    required: set[str] = set()
    seen: set[str] = set()
    while True:
        try:
            from_env(env)
        except SettingsError as exc:
            message = str(exc)
            assert message not in seen, f"no value satisfies: {message}"
            seen.add(message)
            match = _VARIABLE.match(message)
            assert match, f"the error does not start with the variable's name: {message}"
            name = match.group(1)
            required.add(name)
            env[name] = _guess(name, message, tmp, keypair)
        else:
            return required


def missing_from(required: set[str], provided: set[str]) -> set[str]:
    """What `provided` lacks; NAME_FILE stands in for NAME (PEM settings accept either)."""
    return {name for name in required if name not in provided and f"{name}_FILE" not in provided}
