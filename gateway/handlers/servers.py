"""Servers, their API keys and key activity."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from aiohttp import web

from gateway.app_keys import AUTH, BACKENDS, CLOCK, SETTINGS
from gateway.paging import page_params, type_filter
from gateway.problems import Problem
from gateway.rendering import activity_json, json_response
from gateway.request_body import read_json_object
from gateway.times import iso, iso_datetime
from scout.ingest.v1 import ingest_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.identity import Identity
from scout_kit.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")


def _identity(request: web.Request) -> Identity:
    return request[AUTH].identity


LastSeen = dict[str, datetime] | None


async def _last_seen(request: web.Request, server_ids: list[str]) -> LastSeen:
    """When each server last delivered metrics (owned by the ingest service); None when that is
    unknown. The listing still answers if ingest is down: last_seen_at is then absent, the
    status `unknown`, and the outage is logged."""
    if not server_ids:
        return {}
    backends = request.app[BACKENDS]
    try:
        response = await backends.ingest.LastSeen(
            ingest_pb2.LastSeenRequest(server_ids=server_ids),
            metadata=backends.metadata(_identity(request)),
            timeout=backends.timeout,
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("last_seen_at unavailable: %s", exc.code().name)
        return None
    return {
        s.server_id: s.last_seen_at.ToDatetime(tzinfo=UTC)
        for s in response.servers
        if s.HasField("last_seen_at")
    }


def _last_seen_meanwhile(request: web.Request, server_id: str) -> asyncio.Task[LastSeen] | None:
    """`_last_seen` of `server_id` started in the background, if it is a server id at all (an
    invalid one is the key service's to refuse, not a warning about ingest)."""
    try:
        canonical = str(uuid.UUID(server_id))
    except ValueError:
        return None
    if canonical != server_id:
        return None
    return asyncio.create_task(_last_seen(request, [server_id]))


def server_json(
    request: web.Request, server: keys_pb2.Server, last_seen: LastSeen
) -> dict[str, object]:
    seen = None if last_seen is None else last_seen.get(server.id)
    rule = request.app[SETTINGS].status_rule
    paused = server.HasField("paused_at")
    status = rule.status(seen, request.app[CLOCK].now(), known=last_seen is not None, paused=paused)
    used = server.HasField("key_last_used_at")
    return {
        "id": server.id,
        "name": server.name,
        "created_at": iso(server.created_at),
        "key_hint": server.key_hint,
        "key_created_at": iso(server.key_created_at),
        "key_last_used_at": iso(server.key_last_used_at, used),
        "key_last_used_address": (server.key_last_used_address or None) if used else None,
        "last_seen_at": iso_datetime(seen) if seen is not None else None,
        "status": status.value,
        "paused_at": iso(server.paused_at, paused),
    }


async def create_server(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise Problem(
            422,
            "Unprocessable Content",
            "name is required and must be a string.",
            type_="invalid-field",
        )
    backends = request.app[BACKENDS]
    response = await backends.keys.CreateServer(
        keys_pb2.CreateServerRequest(name=name),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    location = f"/api/v1/servers/{response.server.id}"
    result = json_response(
        # A server that was just made has never delivered anything: no need to ask ingest.
        {"server": server_json(request, response.server, {}), "api_key": response.api_key},
        status=201,
    )
    result.headers["Location"] = location
    return result


async def list_servers(request: web.Request) -> web.Response:
    limit, token = page_params(request)
    backends = request.app[BACKENDS]
    response = await backends.keys.ListServers(
        keys_pb2.ListServersRequest(page_size=limit, page_token=token),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    last_seen = await _last_seen(request, [s.id for s in response.servers])
    return json_response(
        {
            "servers": [server_json(request, s, last_seen) for s in response.servers],
            "next_page_token": response.next_page_token or None,
        }
    )


async def get_server(request: web.Request) -> web.Response:
    backends = request.app[BACKENDS]
    server_id = request.match_info["server_id"]
    response = await backends.keys.GetServer(
        keys_pb2.GetServerRequest(server_id=server_id),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    last_seen = await _last_seen(request, [response.server.id])
    return json_response({"server": server_json(request, response.server, last_seen)})


def _optional(body: dict[str, object], name: str, kind: type[T], described: str) -> T | None:
    value = body.get(name)
    if value is None:
        return None
    # The exact type: a JSON true is no integer here, though bool is an int to Python.
    if type(value) is not kind or not isinstance(value, kind):
        raise Problem(
            422,
            "Unprocessable Content",
            f"{name} must be {described}.",
            type_="invalid-field",
            pointer=f"/{name}",
        )
    return value


async def update_server(request: web.Request) -> web.Response:
    """Rename a server (`name`) or pause or resume its monitoring (`paused`)."""
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"name", "paused"})
    if unknown:
        raise Problem(
            422,
            "Unprocessable Content",
            f"{unknown[0][:60]!r} cannot be changed; only name and paused.",
            type_="invalid-field",
        )
    name = _optional(body, "name", str, "a string")
    paused = _optional(body, "paused", bool, "true or false")
    backends = request.app[BACKENDS]
    response = await backends.keys.UpdateServer(
        keys_pb2.UpdateServerRequest(
            server_id=request.match_info["server_id"], name=name, paused=paused
        ),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    last_seen = await _last_seen(request, [response.server.id])
    return json_response({"server": server_json(request, response.server, last_seen)})


async def delete_server(request: web.Request) -> web.Response:
    backends = request.app[BACKENDS]
    await backends.keys.DeleteServer(
        keys_pb2.DeleteServerRequest(server_id=request.match_info["server_id"]),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    return web.Response(status=204)


async def rotate_key(request: web.Request) -> web.Response:
    grace = 0
    if request.can_read_body:
        body = await read_json_object(request)
        given = body.get("grace_seconds", 0)
        if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= 86_400:
            raise Problem(
                422,
                "Unprocessable Content",
                "grace_seconds must be a whole number of seconds from 0 to 86400.",
                type_="invalid-field",
            )
        grace = given
    backends = request.app[BACKENDS]
    server_id = request.match_info["server_id"]
    # A rotation waits for every gateway; the server's last delivery is asked for meanwhile, and
    # shown only once the key service proved the server is this account's.
    seen = _last_seen_meanwhile(request, server_id)
    try:
        response = await backends.keys.RotateKey(
            keys_pb2.RotateKeyRequest(server_id=server_id, grace_seconds=grace),
            metadata=backends.metadata(_identity(request)),
            timeout=backends.timeout,
        )
    except BaseException:
        if seen is not None:
            await cancel_and_wait(seen)
        raise
    if seen is not None and response.server.id == server_id:
        last_seen = await seen
    else:
        if seen is not None:
            await cancel_and_wait(seen)
        last_seen = await _last_seen(request, [response.server.id])
    return json_response(
        {
            "api_key": response.api_key,
            "server": server_json(request, response.server, last_seen),
            "old_key_valid_until": iso(
                response.old_key_valid_until, response.HasField("old_key_valid_until")
            ),
        }
    )


async def list_activity(request: web.Request) -> web.Response:
    limit, token = page_params(request)
    backends = request.app[BACKENDS]
    response = await backends.keys.ListActivity(
        keys_pb2.ListActivityRequest(
            server_id=request.match_info["server_id"],
            page_size=limit,
            page_token=token,
            types=type_filter(request),
        ),
        metadata=backends.metadata(_identity(request)),
        timeout=backends.timeout,
    )
    return json_response(activity_json(response, "key_hint", lambda e: e.key_hint))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/servers", create_server)
    app.router.add_get("/api/v1/servers", list_servers)
    app.router.add_get("/api/v1/servers/{server_id}", get_server)
    app.router.add_delete("/api/v1/servers/{server_id}", delete_server)
    app.router.add_patch("/api/v1/servers/{server_id}", update_server)
    app.router.add_post("/api/v1/servers/{server_id}/api-key/rotate", rotate_key)
    app.router.add_get("/api/v1/servers/{server_id}/activity", list_activity)
