"""Finding the locally installed PostgreSQL and Redis programs, or saying what to install."""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Where distributions put PostgreSQL's server programs when they are not on PATH (Debian and
# Ubuntu keep initdb and pg_ctl out of PATH; Homebrew keeps versioned kegs apart).
POSTGRES_DIR_PATTERNS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres")

INSTALL_POSTGRES = (
    "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `sudo apt-get install postgresql`; "
    "macOS: `brew install postgresql@16`), or point DATABASE_URL at a PostgreSQL you run."
)
INSTALL_REDIS = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: "
    "`sudo apt-get install redis-server`; macOS: `brew install redis`), or point REDIS_URL at a "
    "Redis you run."
)
OR_COMPOSE = "Or run the whole system in containers instead: `docker compose up` (see README.md)."


class MissingBinaries(Exception):
    """Programs needed for the private databases are not installed; the message says which."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = ["cannot start private data stores:", *(f"  - {p}" for p in problems)]
        super().__init__("\n".join([*lines, f"  {OR_COMPOSE}"]))


@dataclass(frozen=True)
class PostgresPrograms:
    bin_dir: Path

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"

    @property
    def pg_ctl(self) -> Path:
        return self.bin_dir / "pg_ctl"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def postgres_candidate_dirs(
    search_path: str | None, patterns: Iterable[str] = POSTGRES_DIR_PATTERNS
) -> list[Path]:
    """Directories that may hold initdb: where PATH's initdb really lives (symlinks resolved, so
    pg_ctl is taken from the same installation), then the usual places, newest version first."""
    found: list[Path] = []
    on_path = shutil.which("initdb", path=search_path)
    if on_path:
        found.append(Path(on_path).resolve().parent)
        found.append(Path(on_path).parent)
    for pattern in patterns:
        found += sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True)
    unique: list[Path] = []
    for directory in found:
        if directory not in unique:
            unique.append(directory)
    return unique


def _is_program(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_postgres(
    search_path: str | None = None, patterns: Iterable[str] = POSTGRES_DIR_PATTERNS
) -> PostgresPrograms | None:
    """The first installation with initdb, pg_ctl and postgres side by side, or None."""
    for directory in postgres_candidate_dirs(search_path, patterns):
        if all(_is_program(directory / name) for name in POSTGRES_PROGRAMS):
            return PostgresPrograms(directory)
    return None


def find_redis_server(search_path: str | None = None) -> Path | None:
    found = shutil.which("redis-server", path=search_path)
    return Path(found) if found else None


@dataclass(frozen=True)
class LocalPrograms:
    postgres: PostgresPrograms | None
    redis_server: Path | None


def require_programs(
    *,
    need_postgres: bool,
    need_redis: bool,
    search_path: str | None = None,
    patterns: Iterable[str] = POSTGRES_DIR_PATTERNS,
) -> LocalPrograms:
    """Find what the private databases need, or raise MissingBinaries naming all that is missing
    (checked before anything starts, so the user fixes everything in one go)."""
    postgres = find_postgres(search_path, patterns) if need_postgres else None
    redis_server = find_redis_server(search_path) if need_redis else None
    problems = []
    if need_postgres and postgres is None:
        problems.append(INSTALL_POSTGRES)
    if need_redis and redis_server is None:
        problems.append(INSTALL_REDIS)
    if problems:
        raise MissingBinaries(problems)
    return LocalPrograms(postgres, redis_server)
