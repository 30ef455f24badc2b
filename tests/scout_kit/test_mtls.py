"""Mutual TLS between the gateway and the services: only certificates of the internal CA get in,
either way, and rotated files are picked up without a restart."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.certs import (
    GATEWAY,
    Authority,
    issue,
    load_authority,
    new_authority,
    write_authority,
    write_leaf,
)
from gateway.backends import Backends
from key_service.server import create_server
from key_service.settings import Settings
from scout.keys.v1 import keys_pb2
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import create_channel
from scout_kit.grpc_server import GrpcService
from scout_kit.identity import TokenIssuer
from scout_kit.settings import SettingsError
from scout_kit.tls import CertificateFiles
from tests.stack import Environment


async def health_status(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def files_in(directory: Path, component: str) -> CertificateFiles:
    return CertificateFiles(
        directory / "ca.pem", directory / f"{component}.pem", directory / f"{component}-key.pem"
    )


def copy_internal(env: Environment, directory: Path, component: str) -> CertificateFiles:
    """`component`'s certificate files, copied where a test may rotate them."""
    directory.mkdir(parents=True, exist_ok=True)
    source = env.internal_files(component)
    target = files_in(directory, component)
    shutil.copy(source.ca_file, target.ca_file)
    shutil.copy(source.cert_file, target.cert_file)
    shutil.copy(source.key_file, target.key_file)
    return target


def rotate_to(authority: Authority, files: CertificateFiles, component: str) -> None:
    """Replace the files with a certificate of `authority`, the way an operator would."""
    certificate, key = issue(
        authority,
        f"scout-{component}",
        [] if component == GATEWAY else ["localhost", "127.0.0.1"],
        server=component != GATEWAY,
        client=True,
    )
    write_authority(authority, files.ca_file, files.ca_file.with_suffix(".key"))
    write_leaf(certificate, key, files.cert_file, files.key_file)


def tls_env(files: CertificateFiles) -> dict[str, str]:
    return {
        "INTERNAL_TLS_CA_FILE": str(files.ca_file),
        "INTERNAL_TLS_CERT_FILE": str(files.cert_file),
        "INTERNAL_TLS_KEY_FILE": str(files.key_file),
    }


@pytest.fixture
async def key_service(env: Environment) -> AsyncIterator[GrpcService]:
    service = await create_server(Settings.from_env(env.service_env("keys")))
    await service.start()
    yield service
    await service.stop(0)


async def test_a_client_with_a_certificate_of_the_internal_ca_is_served(
    env: Environment, key_service: GrpcService
) -> None:
    async with env.service_channel(key_service.port) as channel:
        assert await health_status(channel) == grpc.StatusCode.OK


async def test_a_client_without_a_certificate_is_refused(
    env: Environment, key_service: GrpcService
) -> None:
    address = f"127.0.0.1:{key_service.port}"
    ca = env.internal.ca_file.read_bytes()
    server_only = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(address, server_only) as channel:
        assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(address) as channel:
        assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_certificate_of_another_ca_is_refused(
    env: Environment, key_service: GrpcService
) -> None:
    stranger = trustme.CA().issue_cert("gateway")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=env.internal.ca_file.read_bytes(),
        private_key=stranger.private_key_pem.bytes(),
        certificate_chain=stranger.cert_chain_pems[0].bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{key_service.port}", credentials) as channel:
        assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE


async def test_the_gateway_refuses_a_service_certificate_of_another_ca(
    env: Environment, tmp_path: Path
) -> None:
    foreign_ca = trustme.CA()
    served = foreign_ca.issue_cert("localhost", "127.0.0.1")
    foreign_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    served.cert_chain_pems[0].write_to_path(str(tmp_path / "keys.pem"))
    served.private_key_pem.write_to_path(str(tmp_path / "keys-key.pem"))
    files = files_in(tmp_path, "keys")
    impostor = await create_server(Settings.from_env(env.service_env("keys", **tls_env(files))))
    await impostor.start()
    try:
        gateway_tls = env.internal_files(GATEWAY).load()
        async with create_channel(f"127.0.0.1:{impostor.port}", gateway_tls) as channel:
            assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE
    finally:
        await impostor.stop(0)


async def test_a_service_certificate_must_name_the_host_dialled(
    env: Environment, key_service: GrpcService
) -> None:
    gateway_tls = env.internal_files(GATEWAY).load()
    # The certificate names localhost and 127.0.0.1, not this alias of the loopback address.
    async with create_channel(f"127.0.0.2:{key_service.port}", gateway_tls) as channel:
        assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE


async def test_the_server_reloads_rotated_files_at_the_next_handshake(
    env: Environment, tmp_path: Path
) -> None:
    files = copy_internal(env, tmp_path / "keys", "keys")
    service = await create_server(Settings.from_env(env.service_env("keys", **tls_env(files))))
    await service.start()
    address = f"127.0.0.1:{service.port}"
    old_client = env.internal_files(GATEWAY).load()
    try:
        async with create_channel(address, old_client) as channel:
            assert await health_status(channel) == grpc.StatusCode.OK

        # A half-done rotation (a key that is not the certificate's) is refused, the old kept.
        other_key = tmp_path / "other-key.pem"
        shutil.copy(env.internal_files("auth").key_file, other_key)
        shutil.copy(other_key, files.key_file)
        async with create_channel(address, old_client) as channel:
            assert await health_status(channel) == grpc.StatusCode.OK
        assert service.tls.reloads == 0

        new_ca = new_authority("rotated internal CA")
        rotate_to(new_ca, files, "keys")
        gateway_files = copy_internal(env, tmp_path / "gateway", GATEWAY)
        rotate_to(new_ca, gateway_files, GATEWAY)
        async with create_channel(address, old_client) as channel:
            assert await health_status(channel) == grpc.StatusCode.UNAVAILABLE
        async with create_channel(address, gateway_files.load()) as channel:
            assert await health_status(channel) == grpc.StatusCode.OK
        assert service.tls.reloads == 1
    finally:
        await service.stop(0)


async def test_gateway_channels_are_recreated_when_its_files_change(
    env: Environment, key_service: GrpcService, tmp_path: Path
) -> None:
    files = copy_internal(env, tmp_path, GATEWAY)
    target = f"127.0.0.1:{key_service.port}"
    backends = Backends(
        key_service_addr=target,
        auth_service_addr=target,
        ingest_service_addr=target,
        issuer=TokenIssuer(env.jwt_private_pem, SystemClock()),
        timeout=5.0,
        tls=files,
    )
    try:
        assert backends.reconnect_if_changed() is False
        files.key_file.write_text("not a key")
        assert backends.reconnect_if_changed() is False  # unusable: the old channels stay
        authority = load_authority(env.internal.ca_file, env.internal.ca_key_file)
        assert authority is not None
        rotate_to(authority, files, GATEWAY)
        old_stub = backends.keys
        assert backends.reconnect_if_changed() is True
        assert backends.keys is not old_stub and backends.reconnects == 1
        answer = await backends.keys.ValidateKey(
            keys_pb2.ValidateKeyRequest(key_sha256=b"\0" * 32),
            metadata=backends.service_metadata(),
            timeout=5,
        )
        assert answer.status == keys_pb2.KEY_STATUS_NOT_FOUND
    finally:
        await backends.close()


def test_settings_refuse_files_that_do_not_belong_together(
    env: Environment, tmp_path: Path
) -> None:
    files = copy_internal(env, tmp_path, "keys")
    shutil.copy(env.internal_files("auth").key_file, files.key_file)
    with pytest.raises(SettingsError, match="INTERNAL_TLS_KEY_FILE is not the key"):
        Settings.from_env(env.service_env("keys", **tls_env(files)))
    foreign = trustme.CA()
    foreign.cert_pem.write_to_path(str(files.ca_file))
    shutil.copy(env.internal_files("keys").key_file, files.key_file)
    with pytest.raises(SettingsError, match="INTERNAL_TLS_CERT_FILE is not signed"):
        Settings.from_env(env.service_env("keys", **tls_env(files)))
    values = env.service_env("keys")
    del values["INTERNAL_TLS_CA_FILE"]
    with pytest.raises(SettingsError, match="INTERNAL_TLS_CA_FILE is required"):
        Settings.from_env(values)


async def test_the_health_only_listener_answers_health_and_nothing_else(
    env: Environment,
) -> None:
    service = await create_server(
        Settings.from_env(env.service_env("keys", HEALTH_ADDR="127.0.0.1:0"))
    )
    await service.start()
    try:
        assert service.health_port is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.health_port}") as channel:
            assert await health_status(channel) == grpc.StatusCode.OK
            stub = channel.unary_unary(
                "/scout.keys.v1.KeyService/ValidateKey",
                request_serializer=keys_pb2.ValidateKeyRequest.SerializeToString,
                response_deserializer=keys_pb2.ValidateKeyResponse.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub(keys_pb2.ValidateKeyRequest(key_sha256=b"\0" * 32), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await service.stop(0)
