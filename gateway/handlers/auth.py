"""Sign-in and sessions: login, logout, the current session, the user's sessions, password
change and sign-in activity.

The session cookie is `__Host-scout_session`: Secure, HttpOnly, SameSite=Strict, Path=/, no
Domain, so a browser sends it only over HTTPS, only to this host, never cross-site, and scripts
cannot read it. The cookie token is minted by the auth service at every login; whatever cookie a
client brings to login is ignored (no session fixation).
"""

from __future__ import annotations

from aiohttp import web

from gateway.app_keys import AUTH, BACKENDS, CLIENT_ADDRESS
from gateway.authn import SESSION_COOKIE, Authenticated
from gateway.middlewares import check_origin, public
from gateway.paging import page_params, type_filter
from gateway.problems import Problem, unauthorized
from gateway.rendering import activity_json, json_response
from gateway.request_body import read_json_object
from gateway.times import iso
from scout.auth.v1 import auth_pb2

MAX_FIELD_LENGTH = 1024


def user_json(user: auth_pb2.User) -> dict[str, object]:
    return {
        "id": user.id,
        "account_id": user.account_id,
        "email": user.email,
        "display_name": user.display_name,
        "created_at": iso(user.created_at),
    }


def session_json(session: auth_pb2.Session) -> dict[str, object]:
    return {
        "id": session.id,
        "created_at": iso(session.created_at),
        "last_seen_at": iso(session.last_seen_at),
        "idle_expires_at": iso(session.idle_expires_at),
        "expires_at": iso(session.absolute_expires_at),
        "client_address": session.client_address or None,
        "user_agent": session.user_agent or None,
        "current": session.current,
    }


def current_session_json(
    user: auth_pb2.User, session: auth_pb2.Session, csrf_token: str
) -> dict[str, object]:
    """What login and GET /auth/session answer: who is signed in and until when."""
    return {
        "user": user_json(user),
        "csrf_token": csrf_token,
        "expires_at": iso(session.absolute_expires_at),
        "idle_expires_at": iso(session.idle_expires_at),
        "session": session_json(session),
    }


def set_session_cookie(response: web.StreamResponse, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    # A browser accepts a __Host- cookie (even one that deletes) only with these attributes.
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")


def _string_field(body: dict[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Problem(
            422,
            "Unprocessable Content",
            f"{name} is required and must be a non-empty string.",
            type_="invalid-field",
            pointer=f"/{name}",
        )
    if len(value) > MAX_FIELD_LENGTH:
        raise Problem(
            422,
            "Unprocessable Content",
            f"{name} must be at most {MAX_FIELD_LENGTH} characters.",
            type_="invalid-field",
            pointer=f"/{name}",
        )
    return value


def _throttled(retry_after: int) -> Problem:
    retry_after = max(retry_after, 1)
    return Problem(
        429,
        "Too Many Requests",
        f"Too many failed sign-in attempts. Try again in {retry_after} seconds.",
        type_="too-many-login-attempts",
        headers={"Retry-After": str(retry_after)},
    )


def _session_auth(request: web.Request) -> Authenticated:
    authenticated = request[AUTH]
    if authenticated.session is None or authenticated.session_token is None:
        raise Problem(
            403,
            "Forbidden",
            "This endpoint needs a signed-in session, not an API key.",
            type_="session-required",
        )
    return authenticated


@public
async def login(request: web.Request) -> web.Response:
    # Public, so no credential of the request is read: a cookie it brings is never adopted.
    check_origin(request)
    body = await read_json_object(request)
    email = _string_field(body, "email")
    password = _string_field(body, "password")
    backends = request.app[BACKENDS]
    result: auth_pb2.LoginResponse = await backends.auth.Login(
        auth_pb2.LoginRequest(
            email=email,
            password=password,
            client_address=request[CLIENT_ADDRESS],
            user_agent=request.headers.get("User-Agent", "")[:256],
        ),
        metadata=backends.service_metadata(),
        timeout=backends.timeout,
    )
    if result.status == auth_pb2.LOGIN_STATUS_THROTTLED:
        raise _throttled(result.retry_after_seconds)
    if result.status == auth_pb2.LOGIN_STATUS_DISABLED:
        raise Problem(
            403,
            "Forbidden",
            "This user has been disabled. Contact your account's administrator.",
            type_="user-disabled",
        )
    if result.status != auth_pb2.LOGIN_STATUS_OK:
        # Unknown email and wrong password: one answer, so neither can be told apart.
        raise unauthorized("The email or password is wrong.", "invalid-credentials")
    session = result.session
    max_age = session.absolute_expires_at.seconds - session.created_at.seconds
    response = json_response(current_session_json(result.user, session, result.csrf_token))
    set_session_cookie(response, result.session_token, max_age)
    return response


async def logout(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    backends = request.app[BACKENDS]
    await backends.auth.Logout(
        auth_pb2.LogoutRequest(
            session_token=authenticated.session_token or "",
            client_address=request[CLIENT_ADDRESS],
        ),
        metadata=backends.service_metadata(),
        timeout=backends.timeout,
    )
    response = web.Response(status=204)
    clear_session_cookie(response)
    return response


async def get_session(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    validated = authenticated.session
    assert validated is not None
    return json_response(
        current_session_json(validated.user, validated.session, validated.csrf_token)
    )


async def list_sessions(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    backends = request.app[BACKENDS]
    response: auth_pb2.ListSessionsResponse = await backends.auth.ListSessions(
        auth_pb2.ListSessionsRequest(current_session_id=authenticated.identity.session_id or ""),
        metadata=backends.metadata(authenticated.identity),
        timeout=backends.timeout,
    )
    return json_response({"sessions": [session_json(s) for s in response.sessions]})


async def revoke_session(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    session_id = request.match_info["session_id"]
    backends = request.app[BACKENDS]
    await backends.auth.RevokeSession(
        auth_pb2.RevokeSessionRequest(
            session_id=session_id, client_address=request[CLIENT_ADDRESS]
        ),
        metadata=backends.metadata(authenticated.identity),
        timeout=backends.timeout,
    )
    response = web.Response(status=204)
    if session_id == authenticated.identity.session_id:
        clear_session_cookie(response)
    return response


async def revoke_other_sessions(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    backends = request.app[BACKENDS]
    response: auth_pb2.RevokeOtherSessionsResponse = await backends.auth.RevokeOtherSessions(
        auth_pb2.RevokeOtherSessionsRequest(
            current_session_id=authenticated.identity.session_id or "",
            client_address=request[CLIENT_ADDRESS],
        ),
        metadata=backends.metadata(authenticated.identity),
        timeout=backends.timeout,
    )
    return json_response({"revoked": response.revoked})


async def change_password(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    body = await read_json_object(request)
    current = _string_field(body, "current_password")
    new = _string_field(body, "new_password")
    backends = request.app[BACKENDS]
    response: auth_pb2.ChangePasswordResponse = await backends.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            current_password=current,
            new_password=new,
            current_session_id=authenticated.identity.session_id or "",
            client_address=request[CLIENT_ADDRESS],
        ),
        metadata=backends.metadata(authenticated.identity),
        timeout=backends.timeout,
    )
    if response.status == auth_pb2.CHANGE_PASSWORD_STATUS_WRONG_PASSWORD:
        raise Problem(
            403, "Forbidden", "The current password is wrong.", type_="wrong-current-password"
        )
    if response.status == auth_pb2.CHANGE_PASSWORD_STATUS_WEAK_PASSWORD:
        raise Problem(
            422,
            "Unprocessable Content",
            f"The new password was refused: {response.weak_reason}.",
            type_="weak-password",
            pointer="/new_password",
        )
    if response.status == auth_pb2.CHANGE_PASSWORD_STATUS_THROTTLED:
        raise _throttled(response.retry_after_seconds)
    if response.status != auth_pb2.CHANGE_PASSWORD_STATUS_OK:
        raise RuntimeError(f"ChangePassword answered status {response.status}")
    return json_response({"sessions_ended": response.sessions_ended})


async def list_activity(request: web.Request) -> web.Response:
    authenticated = _session_auth(request)
    limit, token = page_params(request)
    backends = request.app[BACKENDS]
    response: auth_pb2.ListActivityResponse = await backends.auth.ListActivity(
        auth_pb2.ListActivityRequest(page_size=limit, page_token=token, types=type_filter(request)),
        metadata=backends.metadata(authenticated.identity),
        timeout=backends.timeout,
    )
    return json_response(activity_json(response, "user_agent", lambda e: e.user_agent))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_get("/api/v1/auth/session", get_session)
    app.router.add_get("/api/v1/auth/sessions", list_sessions)
    app.router.add_delete("/api/v1/auth/sessions", revoke_other_sessions)
    app.router.add_delete("/api/v1/auth/sessions/{session_id}", revoke_session)
    app.router.add_post("/api/v1/auth/password", change_password)
    app.router.add_get("/api/v1/auth/activity", list_activity)
