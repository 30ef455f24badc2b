"""Run the auth service: `python -m auth_service` (settings from the environment)."""

from auth_service.server import create_server
from auth_service.settings import Settings
from scout_kit.grpc_server import run_service_main


def main() -> None:
    run_service_main("auth_service", Settings.from_env, create_server)


if __name__ == "__main__":
    main()
