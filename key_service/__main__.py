"""Run the key service: `python -m key_service` (settings from the environment)."""

from key_service.server import create_server
from key_service.settings import Settings
from scout_kit.grpc_server import run_service_main


def main() -> None:
    run_service_main("key_service", Settings.from_env, create_server)


if __name__ == "__main__":
    main()
