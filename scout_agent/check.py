"""`scout-agent check`: whether the configuration, its permissions, TLS and the key work."""

from __future__ import annotations

import os
import ssl

from scout_agent import config as config_module
from scout_agent.agent import EXIT_CONFIG, EXIT_KEY_REJECTED, EXIT_OK, EXIT_UNREACHABLE
from scout_agent.config import ConfigError
from scout_agent.transport import KEY_REJECTED, OK, Gateway

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def check(env_file: str, out: TextIO, euid: int | None = None) -> int:
    def line(name: str, ok: bool, text: str) -> None:
        out.write(f"{name:<7} {'ok' if ok else 'FAIL':<4}  {text}\n")

    try:
        config = config_module.load(env_file, os.geteuid() if euid is None else euid)
    except ConfigError as exc:
        line("config", False, str(exc))
        return EXIT_CONFIG
    info = os.stat(env_file)
    line(
        "config",
        True,
        f"{env_file}: key {config.key_hint}, {config.url}, every {config.interval:g}s",
    )
    line("perms", True, f"mode {info.st_mode & 0o777:04o}, owner uid {info.st_uid}")
    for name in config.unknown:
        line("config", True, f"warning: unknown setting {name} is ignored")
    spool = config.spool_dir
    if os.path.isdir(spool):
        waiting = sum(1 for n in os.listdir(spool) if n.endswith(".json") and n != "state.json")
        writable = os.access(spool, os.W_OK)
        line("spool", writable, f"{spool} ({waiting} sample(s) waiting)")
        if not writable:
            return EXIT_CONFIG
    else:
        line("spool", True, f"{spool} (created at the first run)")
    gateway = Gateway(config.url, config.ca_file)
    try:
        result = gateway.whoami(config.api_key)
    finally:
        gateway.close()
    where = f"{gateway.host}:{gateway.port}"
    trust = f"CA file {config.ca_file}" if config.ca_file else "the system's CAs"
    if result.status == 0:
        line("tls", False, f"{result.detail} (trusting {trust})")
        return EXIT_UNREACHABLE
    line("tls", True, f"{where}: certificate verified against {trust} ({ssl.OPENSSL_VERSION})")
    if result.outcome == KEY_REJECTED:
        line("key", False, f"{config.key_hint} rejected: {result.describe()}")
        return EXIT_KEY_REJECTED
    if result.outcome != OK or not isinstance(result.body, dict):
        line("key", False, f"unexpected answer: {result.describe()}")
        return EXIT_UNREACHABLE
    line("key", True, f"{config.key_hint} accepted: server {result.body.get('id')}")
    return EXIT_OK
