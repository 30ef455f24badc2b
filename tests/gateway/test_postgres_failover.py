"""PostgreSQL failover under load: the primary is stopped and its streaming standby promoted
while agents post, sessions are used and a key is rotated every second. The services list both
servers with target_session_attrs=read-write and follow by themselves; printed are the recovery
times and counts (`make failover`)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg2
import redis.exceptions

from scout_admin.commands import open_admin
from tests.admin_support import admin_settings
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.gateway.metrics_support import post, stored
from tests.gateway.test_redis_failover import Figures, gateway_processes, safe_status
from tests.gateway.test_sessions import bare_client, jar_client, signed_in
from tests.postgres_standby import primary_and_standby
from tests.stack import Environment, running_stack

SESSIONS = 3


async def test_under_load_a_promoted_standby_loses_no_sample_and_no_rotation(
    env: Environment, tmp_path: Path
) -> None:
    async with primary_and_standby() as pair:
        hosts = f"127.0.0.1:{pair.primary.port},127.0.0.1:{pair.standby.port}"
        dsn = (
            f"postgresql://postgres@{hosts}/scout?target_session_attrs=read-write&connect_timeout=2"
        )
        local = dataclasses.replace(env, database_url=dsn)
        emails = [unique_email() for _ in range(SESSIONS)]
        async with open_admin(admin_settings(local)) as admin:
            await admin.migrate()
            for email in emails:
                await admin.create_user(email, STRONG_PASSWORD, None)
            async with (
                running_stack(local, gateways=0) as stack,
                gateway_processes(local, stack.backends, 2) as urls,
                bare_client(env) as raw,
            ):
                agent = await new_server(admin, emails[0], name="agent")
                rotated = await new_server(admin, emails[0], name="rotated")
                browsers = [jar_client(env) for _ in emails]
                for index, email in enumerate(emails):
                    await signed_in(browsers[index], urls[index % 2], email)
                loop = asyncio.get_running_loop()
                stopped_at: list[float] = []
                stop = asyncio.Event()
                sessions, agents, rotations = Figures(), Figures(), Figures()
                acknowledged: set[str] = set()
                stale: list[str] = []

                def since() -> float:
                    return loop.time() - stopped_at[0] if stopped_at else -1.0

                async def browse(index: int) -> None:
                    turn = index
                    while not stop.is_set():
                        turn += 1
                        url = f"{urls[turn % 2]}/api/v1/whoami"
                        status = await safe_status(browsers[index], "GET", url)
                        sessions.record(status, since(), status == 200)
                        await asyncio.sleep(0.05)

                async def post_samples() -> None:
                    pending: list[str] = []
                    turn = 0
                    while not stop.is_set():
                        turn += 1
                        moment = datetime.now(UTC) - timedelta(seconds=1)
                        pending.append(moment.isoformat().replace("+00:00", "Z"))
                        batch = {"samples": [{"ts": t, "metrics": {"load": 1.0}} for t in pending]}
                        try:
                            status, _, _ = await post(raw, urls[turn % 2], agent.api_key, batch)
                        except aiohttp.ClientError:
                            status = 0
                        agents.record(status, since(), status == 202)
                        if status == 202:  # else sent again, as the agent's spool does
                            acknowledged.update(pending)
                            pending = []
                        await asyncio.sleep(0.05)

                async def rotate_every_second() -> None:
                    current = rotated.api_key
                    while not stop.is_set():
                        for url in urls:
                            await whoami_status(raw, url, current)
                        try:
                            new_key = await rotate(admin, rotated)
                        except (psycopg2.Error, redis.exceptions.RedisError):
                            rotations.record(-1, since(), False)  # not confirmed: retried
                            await asyncio.sleep(0.2)
                            continue
                        rotations.record(200, since(), True)
                        for url in urls:
                            if await whoami_status(raw, url, current) != 401:
                                stale.append(url)
                        current = new_key
                        await asyncio.sleep(1.0)

                tasks = [asyncio.create_task(browse(i)) for i in range(SESSIONS)]
                tasks += [asyncio.create_task(post_samples())]
                tasks += [asyncio.create_task(rotate_every_second())]
                try:
                    async with asyncio.timeout(120):
                        await asyncio.sleep(2.0)
                        stopped_at.append(loop.time())
                        await pair.primary.stop()
                        await pair.promote()
                        promoted = since()
                        # Until every kind of client is served again for a while.
                        while not all(  # noqa: ASYNC110 - state of other tasks and processes
                            f.last_failure is None or f.last_failure < since() - 2
                            for f in (sessions, agents, rotations)
                        ):
                            await asyncio.sleep(0.1)
                        await asyncio.sleep(1.0)
                finally:
                    stop.set()
                    await asyncio.gather(*tasks)
                    for jar in browsers:
                        await jar.close()
                rows = await stored(admin, agent.server_id)
        stored_at = {ts for _, ts, _ in rows}
        lost = [
            t for t in acknowledged
            if datetime.fromisoformat(t.replace("Z", "+00:00")) not in stored_at
        ]  # fmt: skip

        def recovery(figures: Figures) -> str:
            if figures.last_failure is None:
                return "none needed"
            return f"{figures.last_failure:.2f}s"

        print(
            "\nPostgreSQL primary stopped, standby promoted, under load (2 gateways):\n"
            f"  standby promoted {promoted:.2f}s after the stop\n"
            f"  sessions: recovered after {recovery(sessions)}; "
            f"statuses {dict(sessions.statuses)}\n"
            f"  agent: {len(acknowledged)} samples acknowledged, {len(lost)} lost; recovered "
            f"after {recovery(agents)}; statuses {dict(agents.statuses)}\n"
            f"  rotations: {rotations.statuses[200]} confirmed, {rotations.statuses[-1]} "
            f"refused while no primary; stale key acceptances {len(stale)}"
        )
        assert set(sessions.statuses) <= {200, 503}
        assert set(agents.statuses) <= {202, 503}
        assert stale == []
        assert lost == []
        assert rotations.statuses[200] >= 1
