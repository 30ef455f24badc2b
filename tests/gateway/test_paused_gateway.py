"""Immediate invalidation with real gateway processes, whatever state a replica is in: stopped
(SIGSTOP) across a rotation, a logout or a password change, or with its subscription killed
during a burst of rotations."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import redis.asyncio as aioredis

from gateway.authn import SESSION_COOKIE
from scout_admin.commands import Admin
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.stack import (
    Environment,
    GatewayProcess,
    client_session,
    gateway_processes,
    kill_client,
    running_stack,
)

# Longer than every timeout of the lease and the publisher's wait.
STOPPED_SECONDS = 3.0
NEW_PASSWORD = "a different horse battery staple 43"


def _keep_alive_session(env: Environment) -> aiohttp.ClientSession:
    # One connection: every request after the first waits on the same keep-alive connection.
    connector = aiohttp.TCPConnector(ssl=env.client_ssl(), limit=1)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20))


class _Load:
    """Clients sending the same key to every running gateway, recording when each request was
    sent and how it was answered."""

    def __init__(self, env: Environment, gateways: list[GatewayProcess], key: str) -> None:
        self._env = env
        self._gateways = gateways
        self._key = key
        self._stop = asyncio.Event()
        self.results: list[tuple[float, int]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> _Load:
        for gateway in self._gateways:
            for _ in range(2):
                self._tasks.append(asyncio.create_task(self._client(gateway.url)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30)

    async def _client(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        async with _keep_alive_session(self._env) as http:
            while not self._stop.is_set():
                sent = loop.time()
                self.results.append((sent, await whoami_status(http, url, self._key)))
                await asyncio.sleep(0.005)

    def accepted_after(self, moment: float) -> int:
        return sum(1 for sent, status in self.results if sent > moment and status == 200)

    def sent_after(self, moment: float) -> int:
        return sum(1 for sent, _ in self.results if sent > moment)


async def _warm(env: Environment, gateways: list[GatewayProcess], key: str) -> None:
    async with _keep_alive_session(env) as http:
        for gateway in gateways:
            assert await whoami_status(http, gateway.url, key) == 200


async def _refused_everywhere(
    env: Environment, gateways: list[GatewayProcess], old: str, new: str
) -> None:
    async with _keep_alive_session(env) as http:
        for gateway in gateways:
            assert await whoami_status(http, gateway.url, old) == 401
            assert await whoami_status(http, gateway.url, new) == 200


async def test_a_stopped_gateway_never_accepts_a_key_rotated_meanwhile(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    loop = asyncio.get_running_loop()
    async with (
        running_stack(env, gateways=0) as stack,
        gateway_processes(env, stack.backends, 3) as gateways,
        _keep_alive_session(env) as to_paused,
    ):
        *running, paused = gateways
        await _warm(env, gateways, server.api_key)
        # The connection the waiting request will use, opened and cached before the stop.
        assert await whoami_status(to_paused, paused.url, server.api_key) == 200
        async with _Load(env, running, server.api_key) as load:
            await asyncio.sleep(0.2)
            paused.process.send_signal(signal.SIGSTOP)
            try:
                # Bounded (it waits out the stopped gateway's lease) and a success.
                new_key = await asyncio.wait_for(rotate(admin, server), 10)
                answered = loop.time()
                # Sent now, on the open keep-alive connection; read when the gateway resumes.
                waiting = asyncio.create_task(whoami_status(to_paused, paused.url, server.api_key))
                await asyncio.sleep(STOPPED_SECONDS)
                assert not waiting.done()
            finally:
                paused.process.send_signal(signal.SIGCONT)
            assert await asyncio.wait_for(waiting, 15) == 401
            await asyncio.sleep(0.2)
        assert load.accepted_after(answered) == 0
        assert load.sent_after(answered) > 0
        assert any(status == 200 for sent, status in load.results if sent < answered)
        await _refused_everywhere(env, gateways, server.api_key, new_key)


async def test_subscriptions_killed_during_a_burst_of_rotations(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    control = aioredis.Redis.from_url(env.redis_url)
    try:
        async with (
            running_stack(env, gateways=0) as stack,
            gateway_processes(env, stack.backends, 3) as gateways,
        ):
            key = server.api_key
            for round_ in range(4):
                await _warm(env, gateways, key)
                # A different replica each time; only its subscription (by connection name).
                victim = gateways[round_ % len(gateways)]
                assert await kill_client(control, victim.connection_name) >= 1
                new_key = await asyncio.wait_for(rotate(admin, server), 10)
                await _refused_everywhere(env, gateways, key, new_key)
                key = new_key
    finally:
        await control.aclose()


async def _sign_in(env: Environment, url: str, email: str) -> tuple[str, str]:
    """A new session: its cookie token and CSRF token."""
    async with (
        client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.post(
            f"{url}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
        ) as response,
    ):
        assert response.status == 200
        body = await response.json()
        token = response.cookies[SESSION_COOKIE].value
    return token, body["csrf_token"]


async def _whoami_with(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(
        f"{url}/api/v1/whoami", headers={"Cookie": f"{SESSION_COOKIE}={token}"}
    ) as response:
        await response.read()
        return response.status


def _cookie_session(env: Environment) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=env.client_ssl(), limit=1)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def test_a_stopped_gateway_never_accepts_a_session_ended_meanwhile(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        running_stack(env, gateways=0) as stack,
        gateway_processes(env, stack.backends, 3) as gateways,
        _cookie_session(env) as to_paused,
        _cookie_session(env) as http,
    ):
        a, *_, paused = gateways
        logged_out, logged_out_csrf = await _sign_in(env, a.url, email)
        changer, changer_csrf = await _sign_in(env, a.url, email)
        other, _ = await _sign_in(env, a.url, email)
        for token in (logged_out, changer, other):  # cached everywhere
            for gateway in gateways:
                assert await _whoami_with(http, gateway.url, token) == 200
        assert await _whoami_with(to_paused, paused.url, changer) == 200  # keep-alive open
        paused.process.send_signal(signal.SIGSTOP)
        try:
            async with asyncio.timeout(10):
                async with http.post(
                    f"{a.url}/api/v1/auth/logout",
                    headers={
                        "Cookie": f"{SESSION_COOKIE}={logged_out}",
                        "X-CSRF-Token": logged_out_csrf,
                        "Origin": "https://localhost",
                    },
                ) as response:
                    assert response.status in (200, 204)
                async with http.post(
                    f"{a.url}/api/v1/auth/password",
                    json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
                    headers={
                        "Cookie": f"{SESSION_COOKIE}={changer}",
                        "X-CSRF-Token": changer_csrf,
                        "Origin": "https://localhost",
                    },
                ) as response:
                    assert response.status == 200, await response.text()
                    assert (await response.json())["sessions_ended"] == 1
            waiting = [
                asyncio.create_task(_whoami_with(to_paused, paused.url, token))
                for token in (logged_out, other, changer)
            ]
            await asyncio.sleep(STOPPED_SECONDS)
            assert not any(task.done() for task in waiting)
        finally:
            paused.process.send_signal(signal.SIGCONT)
        # In order on the one keep-alive connection: the ended two refused, the kept one not.
        assert await asyncio.wait_for(asyncio.gather(*waiting), 15) == [401, 401, 200]
        for gateway in gateways:
            assert await _whoami_with(http, gateway.url, logged_out) == 401
            assert await _whoami_with(http, gateway.url, other) == 401
            assert await _whoami_with(http, gateway.url, changer) == 200
