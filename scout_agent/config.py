"""The agent's configuration: the env file, checked before anything is trusted.

The file holds the server's API key, so the agent refuses to start (and a reload is refused, the
running configuration kept) when anyone but its owner could read or change it, when, running as
root, root does not own it, or when the URL is not `https://`. Every refusal says how to fix it.
The key itself is never printed: only its last four characters (`...abcd`).
"""

from __future__ import annotations

import os
import re
import stat

from scout_agent.envfile import EnvFileError, parse
from scout_agent.transport import split_https_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_ENV_FILE = "/opt/scout-agent/agent.env"
ENV_FILE_VARIABLE = "SCOUT_AGENT_ENV_FILE"
DEFAULT_SPOOL_DIR = "/var/lib/scout-agent/spool"
DEFAULT_INTERVAL = 10.0
DEFAULT_SPOOL_MAX = 8640  # samples: a day at the default interval
DEFAULT_MAX_BACKOFF = 300.0
KNOWN = {
    "SCOUTAPIKEY",
    "SCOUTURL",
    "SCOUTINTERVAL",
    "SCOUTCAFILE",
    "SCOUTSPOOLDIR",
    "SCOUTSPOOLMAX",
    "SCOUTMAXBACKOFF",
}
KEY_FORMAT = re.compile(r"^[0-9a-fA-F]{64}$")


class ConfigError(Exception):
    """The configuration is refused; the message says what is wrong and how to fix it."""


def mask(key: str) -> str:
    """What may be shown of a key: its last four characters."""
    return "..." + key[-4:] if len(key) >= 8 else "..."


class Config:
    """The settings from one reading of the env file (no dataclass: it would import `inspect`,
    a megabyte of the agent's memory budget)."""

    __slots__ = (
        "api_key",
        "ca_file",
        "env_file",
        "identity",
        "interval",
        "max_backoff",
        "spool_dir",
        "spool_max",
        "unknown",
        "url",
    )

    def __init__(
        self,
        *,
        env_file: str,
        api_key: str,
        url: str,
        interval: float,
        ca_file: str | None,
        spool_dir: str,
        spool_max: int,
        max_backoff: float,
        identity: tuple[int, int, int, int],
        unknown: tuple[str, ...] = (),
    ) -> None:
        self.env_file = env_file
        self.api_key = api_key
        self.url = url  # https://host[:port][/prefix], without a trailing slash
        self.interval = interval
        self.ca_file = ca_file
        self.spool_dir = spool_dir
        self.spool_max = spool_max
        self.max_backoff = max_backoff
        self.identity = identity
        self.unknown = unknown

    def __repr__(self) -> str:
        return (
            f"Config(env_file={self.env_file!r}, api_key={mask(self.api_key)!r}, "
            f"url={self.url!r}, interval={self.interval}, ca_file={self.ca_file!r}, "
            f"spool_dir={self.spool_dir!r}, spool_max={self.spool_max})"
        )

    @property
    def key_hint(self) -> str:
        return mask(self.api_key)


def env_file_path(flag: str | None, environ: Mapping[str, str]) -> str:
    return flag or environ.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when the file is edited or replaced: device, inode, mtime, size."""
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def file_identity(path: str) -> tuple[int, int, int, int] | None:
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def check_permissions(path: str, info: os.stat_result, euid: int) -> None:
    """Refuse a key file others could read or change."""
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file. Fix: make it a plain file.")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o066:
        who = []
        if mode & 0o060:
            who.append("group")
        if mode & 0o006:
            who.append("others")
        raise ConfigError(
            f"{path} holds the API key but is readable or writable by {' and '.join(who)} "
            f"(mode {mode:04o}). Fix: chmod 600 {path}"
        )
    if euid == 0 and info.st_uid != 0:
        raise ConfigError(
            f"{path} is owned by uid {info.st_uid}, not root, and the agent runs as root: that "
            f"user could change the key or the URL the agent sends to. Fix: chown root:root {path}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    try:
        parent = os.stat(directory)
    except OSError as exc:
        raise ConfigError(f"cannot inspect {directory}: {exc.strerror}") from None
    if stat.S_IMODE(parent.st_mode) & 0o022 and not parent.st_mode & stat.S_ISVTX:
        raise ConfigError(
            f"{directory}, which holds {os.path.basename(path)}, is writable by group or others, "
            f"so they could replace the file. Fix: chmod go-w {directory}"
        )


def read_env_file(path: str, euid: int) -> tuple[dict[str, str], tuple[int, int, int, int]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist. Fix: run `scout-agent install --url https://...` (the key "
            "on stdin), or create it with SCOUTAPIKEY and SCOUTURL, mode 600, owned by root."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        check_permissions(path, info, euid)
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
            text = handle.read()
    finally:
        os.close(fd)
    try:
        values = parse(text, path)
    except EnvFileError as exc:
        raise ConfigError(f"{exc}. Fix: write one NAME=value per line.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    return values, _identity(info)


def check_url(raw: str, path: str) -> str:
    url = raw.strip().rstrip("/")
    if not url:
        raise ConfigError(
            f"SCOUTURL is missing in {path}. Fix: add SCOUTURL=https://<your Scout gateway>"
        )
    if url.lower().startswith("http://"):
        raise ConfigError(
            f"SCOUTURL in {path} is http://: the API key would cross the network unencrypted, "
            "so the agent refuses it. Fix: use the gateway's https:// URL."
        )
    if split_https_url(url) is None:
        raise ConfigError(
            f"SCOUTURL in {path} must be an https:// URL such as https://scout.example.com "
            f"(got {url[:80]!r})."
        )
    return url


def _number(values: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be a number from {low:g} to {high:g} (got {raw[:20]!r}).")
    return value


def load(path: str, euid: int | None = None) -> Config:
    """Read, check and validate the env file at `path`; ConfigError says how to fix it."""
    values, identity = read_env_file(path, os.geteuid() if euid is None else euid)
    key = values.get("SCOUTAPIKEY", "").strip()
    if not key:
        raise ConfigError(
            f"SCOUTAPIKEY is missing in {path}. Fix: put the server's API key there "
            "(`scoutctl key rotate SERVER --update-env " + path + "` writes a new one)."
        )
    if not KEY_FORMAT.match(key):
        raise ConfigError(
            f"SCOUTAPIKEY in {path} is not 64 hexadecimal characters (it has {len(key)}, "
            f"ending {mask(key)}). Fix: copy the whole key."
        )
    url = check_url(values.get("SCOUTURL", ""), path)
    ca_file = values.get("SCOUTCAFILE", "").strip() or None
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ConfigError(f"SCOUTCAFILE {ca_file} is not a readable file. Fix: the PEM CA path.")
    return Config(
        env_file=path,
        api_key=key.lower(),
        url=url,
        interval=_number(values, "SCOUTINTERVAL", DEFAULT_INTERVAL, 0.1, 3600),
        ca_file=ca_file,
        spool_dir=values.get("SCOUTSPOOLDIR", "").strip() or DEFAULT_SPOOL_DIR,
        spool_max=int(_number(values, "SCOUTSPOOLMAX", DEFAULT_SPOOL_MAX, 1, 10_000_000)),
        max_backoff=_number(values, "SCOUTMAXBACKOFF", DEFAULT_MAX_BACKOFF, 0.1, 86_400),
        identity=identity,
        unknown=tuple(sorted(name for name in values if name not in KNOWN)),
    )
