"""Key service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.service import StoreSettings
from scout_kit.settings import Env

DEFAULT_PORT = 50052
SERVICE = "key_service"


@dataclass(frozen=True)
class Settings(StoreSettings):
    """The key service reads only what every service with a database and Redis reads."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        store = StoreSettings.read(Env(environ), default_port=DEFAULT_PORT, service=SERVICE)
        return cls(**vars(store))
