"""Where scoutctl keeps the session: `$XDG_CONFIG_HOME/scout/session.json` (or
`~/.config/scout/`), the directory 0700 and the file 0600, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping

from scout_agent.envfile import write_atomic
from scoutctl.client import SessionState

SESSION_FILE = "session.json"


def config_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config"
    )
    return os.path.join(base, "scout")


class SessionStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, SESSION_FILE)

    def load(self) -> SessionState | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return SessionState.from_json(json.load(handle))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable or from another version: sign in again

    def save(self, session: SessionState) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)
        write_atomic(self.path, json.dumps(session.to_json(), indent=2) + "\n", 0o600)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
