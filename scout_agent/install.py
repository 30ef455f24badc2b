"""`scout-agent install`: the env file (0600, root) and the hardened systemd unit.

The unit's text lives here, so the single-file agent can install it; the copy in
`deploy/systemd/scout-agent.service` is this template with the default paths, and a test keeps
the two identical.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TextIO

from scout_agent import config as config_module
from scout_agent.config import DEFAULT_ENV_FILE, DEFAULT_SPOOL_DIR, ConfigError, mask
from scout_agent.envfile import EnvFileError, parse, set_values, write_atomic

DEFAULT_UNIT_DIR = "/etc/systemd/system"
UNIT_NAME = "scout-agent.service"
DEFAULT_PYTHON = "/usr/bin/python3"
# Where `install` puts the `scout-agent` command that runs the installed archive.
DEFAULT_BIN_DIR = "/usr/local/bin"
ARCHIVE_NAME = "scout-agent.pyz"
DEFAULT_EXEC_START = (
    f"{DEFAULT_PYTHON} /opt/scout-agent/{ARCHIVE_NAME} run --env-file {DEFAULT_ENV_FILE}"
)

UNIT_TEMPLATE = """\
# Server Scout agent: collects this server's metrics and sends them over HTTPS.
# Installed by `scout-agent install`; source: deploy/systemd/scout-agent.service.
[Unit]
Description=Server Scout agent
Documentation=https://docs.serverscout.ie/
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
# SIGHUP rereads the env file now (it is also polled every cycle: no restart after a rotation).
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=10
# Exit status 3: the configuration was refused; the journal says how to fix it.
RestartPreventExitStatus=3
TimeoutStopSec=30
Environment=PYTHONDONTWRITEBYTECODE=1

# Root only because the key file is root's alone (0600, owned by root); every privilege root
# would bring is taken away below.
User=root
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
# read-only, not yes: the agent reports the disk usage of /home, so it must see the mount.
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
UMask=0077
# The spool is the only place it writes. (No ProcSubset/ProtectProc: it counts processes.)
StateDirectory=scout-agent
StateDirectoryMode=0700
ReadWritePaths=-{spool_dir}
MemoryMax=64M
TasksMax=4

[Install]
WantedBy=multi-user.target
"""


def render_unit(exec_start: str = DEFAULT_EXEC_START, spool_dir: str = DEFAULT_SPOOL_DIR) -> str:
    return UNIT_TEMPLATE.format(exec_start=exec_start, spool_dir=spool_dir)


class InstallError(Exception):
    """Installation refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class InstallOptions:
    url: str
    env_file: str = DEFAULT_ENV_FILE
    ca_file: str | None = None
    unit_dir: str = DEFAULT_UNIT_DIR
    systemd: bool = True
    start: bool = True
    bin_dir: str = DEFAULT_BIN_DIR


def running_archive() -> str | None:
    """The .pyz this agent runs from, if it runs from one."""
    path = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return path if path.endswith(".pyz") and os.path.isfile(path) else None


def _python() -> str:
    return DEFAULT_PYTHON if os.path.exists(DEFAULT_PYTHON) else sys.executable


def exec_start(env_file: str, archive: str | None) -> str:
    python = _python()
    if archive is not None:
        return f"{python} {shlex.quote(archive)} run --env-file {shlex.quote(env_file)}"
    return f"{sys.executable} -m scout_agent run --env-file {shlex.quote(env_file)}"


def write_env_file(options: InstallOptions, api_key: str) -> None:
    updates = {"SCOUTAPIKEY": api_key, "SCOUTURL": options.url}
    if options.ca_file is not None:
        updates["SCOUTCAFILE"] = os.path.abspath(options.ca_file)
    text = ""
    if os.path.lexists(options.env_file):
        with open(options.env_file, encoding="utf-8") as handle:
            text = handle.read()
        try:
            parse(text, options.env_file)
        except EnvFileError as exc:
            raise InstallError(f"{exc}; fix or remove the file, then install again") from None
    else:
        text = (
            "# Server Scout agent settings (see `scout-agent --help`). Keep this file 0600, "
            "owned by root.\n"
        )
    directory = os.path.dirname(os.path.abspath(options.env_file))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    write_atomic(options.env_file, set_values(text, updates), 0o600, (0, 0))


def install_archive(options: InstallOptions, out: TextIO) -> str | None:
    """Copy the archive we run from beside the env file, and put a `scout-agent` command in
    the bin directory that runs it (so `scout-agent check` works as documented). None when
    not running from an archive (a pip install has its own command)."""
    archive = running_archive()
    if archive is None:
        return None
    target = os.path.join(os.path.dirname(os.path.abspath(options.env_file)), ARCHIVE_NAME)
    if os.path.abspath(archive) != target:
        shutil.copyfile(archive, target + ".new")
        os.chmod(target + ".new", 0o644)
        os.replace(target + ".new", target)
        out.write(f"copied the agent to {target}\n")
    os.makedirs(options.bin_dir, mode=0o755, exist_ok=True)
    launcher = os.path.join(options.bin_dir, "scout-agent")
    script = f'#!/bin/sh\nexec {_python()} {shlex.quote(target)} "$@"\n'
    write_atomic(launcher, script, 0o755, (0, 0))
    out.write(f"wrote {launcher}\n")
    return target


def install(options: InstallOptions, api_key: str, out: TextIO) -> None:
    if os.geteuid() != 0:
        raise InstallError("install needs root (the key file belongs to root): run it with sudo")
    api_key = api_key.strip()
    if not config_module.KEY_FORMAT.match(api_key):
        raise InstallError(
            f"the key read from stdin is not 64 hexadecimal characters (it has {len(api_key)}); "
            "pipe the server's API key in, for example: scout-agent install --url URL < key.txt"
        )
    try:
        config_module.check_url(options.url, "--url")
    except ConfigError as exc:
        raise InstallError(str(exc)) from None
    if options.ca_file is not None and not os.path.isfile(options.ca_file):
        raise InstallError(f"--ca-file {options.ca_file} is not a file")
    write_env_file(options, api_key)
    try:
        config = config_module.load(options.env_file, 0)
    except ConfigError as exc:
        raise InstallError(str(exc)) from None
    out.write(
        f"wrote {options.env_file} (mode 0600, owner root, key {mask(config.api_key)}, "
        f"{config.url})\n"
    )
    archive = install_archive(options, out)
    if not options.systemd:
        out.write(
            f"not installing a systemd unit; run `{exec_start(options.env_file, archive)}` as "
            "root under your service manager\n"
        )
        return
    os.makedirs(options.unit_dir, mode=0o755, exist_ok=True)
    unit_path = os.path.join(options.unit_dir, UNIT_NAME)
    unit = render_unit(exec_start(options.env_file, archive), config.spool_dir)
    write_atomic(unit_path, unit, 0o644, (0, 0))
    out.write(f"wrote {unit_path}\n")
    systemd_running = os.path.isdir("/run/systemd/system") and shutil.which("systemctl")
    if options.start and options.unit_dir == DEFAULT_UNIT_DIR and systemd_running:
        for command in (
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "scout-agent.service"],
            ["systemctl", "restart", "scout-agent.service"],
        ):
            subprocess.run(command, check=True)  # noqa: S603 - fixed arguments
        out.write("scout-agent.service enabled and started: `journalctl -u scout-agent -f`\n")
    else:
        out.write("start it with: systemctl daemon-reload && systemctl enable --now scout-agent\n")
    out.write(f"then check it with: scout-agent check --env-file {options.env_file}\n")
