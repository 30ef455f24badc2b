"""Reading settings from an environment mapping: validated once, failing fast, secrets hidden."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from scout_kit.tls import CA_VARIABLE, CERT_VARIABLE, KEY_VARIABLE, CertificateFiles, TlsFilesError

ENVIRONMENTS = ("development", "production")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Env:
    """Typed accessors over an environment mapping; every error names the variable."""

    values: Mapping[str, str]

    def text(self, name: str, default: str | None = None) -> str:
        value = self.values.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        value = self.values.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self.values.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self.values.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.values.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def from_file(self, name: str) -> str | None:
        """The content of the file NAME_FILE names (a mounted secret), stripped; None when
        NAME_FILE is unset. Setting both NAME and NAME_FILE is refused."""
        path = self.optional(f"{name}_FILE")
        if path is None:
            return None
        if self.optional(name):
            raise SettingsError(f"set only one of {name} and {name}_FILE")
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise SettingsError(f"{name}_FILE: {path} is empty")
        return value

    def url(self, name: str, schemes: tuple[str, ...], default: str | None = None) -> Secret:
        """A URL that may carry a password, so it is kept as a Secret; given as NAME or, as a
        file (a mounted secret), NAME_FILE."""
        value = self.from_file(name) or self.text(name, default)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.hostname or parts.path):
            raise SettingsError(f"{name} must be a URL starting with {' or '.join(schemes)}://")
        return Secret(value)

    def address(self, name: str, default: str | None = None) -> str:
        """A listen address or gRPC target: host:port, or a gRPC name such as dns:///host:port
        or ipv4:10.0.0.1:50051,10.0.0.2:50051 (several replicas, balanced round robin)."""
        value = self.text(name, default)
        if value.startswith(("dns:", "unix:", "unix-abstract:")):
            return value
        endpoints = value.removeprefix("ipv4:").removeprefix("ipv6:").split(",")
        for endpoint in endpoints:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise SettingsError(f"{name} must be host:port, got {value!r}")
        return value

    def pem(self, name: str, *, required: bool = True) -> Secret | None:
        """PEM text given inline as NAME or as a file path in NAME_FILE (exactly one of them)."""
        inline = self.optional(name)
        path = self.optional(f"{name}_FILE")
        if inline and path:
            raise SettingsError(f"set only one of {name} and {name}_FILE")
        if path:
            try:
                inline = Path(path).read_text()
            except OSError as exc:
                raise SettingsError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if not inline:
            if required:
                raise SettingsError(f"{name} or {name}_FILE is required but not set")
            return None
        if "-----BEGIN" not in inline:
            raise SettingsError(f"{name} must be a PEM document")
        return Secret(inline)

    def environment(self) -> str:
        return self.choice("SCOUT_ENV", "production", ENVIRONMENTS)


def internal_tls(env: Env) -> CertificateFiles:
    """The internal CA, certificate and key files (all required), checked once at start."""
    files = CertificateFiles(
        Path(env.text(CA_VARIABLE)), Path(env.text(CERT_VARIABLE)), Path(env.text(KEY_VARIABLE))
    )
    for variable, path in files.named():
        if not path.is_file():
            raise SettingsError(f"{variable}: no such file {path}")
    try:
        files.load()
    except TlsFilesError as exc:
        raise SettingsError(str(exc)) from None
    return files


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing: on only when an OTLP endpoint is configured."""

    endpoint: str | None
    service_name: str
    sample_ratio: float

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    @classmethod
    def from_env(cls, env: Env, service: str) -> TracingSettings:
        endpoint = None
        if not env.flag("OTEL_SDK_DISABLED", False):
            for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
                endpoint = env.optional(name)
                if endpoint is not None:
                    if not endpoint.startswith(("http://", "https://")):
                        raise SettingsError(f"{name} must start with http:// or https://")
                    break
        protocol = env.optional("OTEL_EXPORTER_OTLP_PROTOCOL")
        if endpoint is not None and protocol not in (None, "grpc"):
            raise SettingsError("OTEL_EXPORTER_OTLP_PROTOCOL: only grpc is supported")
        return cls(
            endpoint=endpoint,
            service_name=env.text("OTEL_SERVICE_NAME", service),
            sample_ratio=env.number("TRACE_SAMPLE_RATIO", 1.0, minimum=0.0, maximum=1.0),
        )


@dataclass(frozen=True)
class CommonSettings:
    """What every gRPC service reads the same way."""

    environment: str
    listen_addr: str
    log_level: str
    log_format: str
    shutdown_grace_seconds: float
    metrics_addr: str | None
    # A plain-text listener serving only the health service, for probes that cannot present a
    # client certificate (Kubernetes' native gRPC probes); unset disables it.
    health_addr: str | None
    internal_tls: CertificateFiles
    tracing: TracingSettings

    @classmethod
    def from_env(cls, env: Env, *, default_port: int, service: str) -> CommonSettings:
        return cls(
            environment=env.environment(),
            listen_addr=env.address("LISTEN_ADDR", f"0.0.0.0:{default_port}"),
            log_level=env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            log_format=env.choice("LOG_FORMAT", "auto", ("auto", "json", "text")),
            shutdown_grace_seconds=env.number(
                "SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0.0, maximum=300.0
            ),
            metrics_addr=env.address("METRICS_ADDR") if env.optional("METRICS_ADDR") else None,
            health_addr=env.address("HEALTH_ADDR") if env.optional("HEALTH_ADDR") else None,
            internal_tls=internal_tls(env),
            tracing=TracingSettings.from_env(env, service),
        )
