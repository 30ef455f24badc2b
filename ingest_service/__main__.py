"""Run the ingest service: `python -m ingest_service` (settings from the environment)."""

from ingest_service.server import create_server
from ingest_service.settings import Settings
from scout_kit.grpc_server import run_service_main


def main() -> None:
    run_service_main("ingest_service", Settings.from_env, create_server)


if __name__ == "__main__":
    main()
