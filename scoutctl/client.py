"""A small client library for the Server Scout API, standard library only.

    from scoutctl.client import ScoutClient, ScoutError

    with ScoutClient("https://scout.example.com", api_key=os.environ["SCOUT_API_KEY"]) as scout:
        print(scout.latest_metrics(server_id))

Every method is one endpoint and returns the decoded JSON body (None for 204). A problem answer
(RFC 9457) raises `ScoutError` carrying the status, problem type, title, detail and Retry-After;
failing to reach the gateway raises `ScoutUnreachable`. HTTPS only, certificates verified (against
`ca_file` when given). With a session (after `login`, or one restored from a `SessionState`) the
client sends the cookie, and the CSRF token on every unsafe request.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["SESSION_COOKIE", "ScoutClient", "ScoutError", "ScoutUnreachable", "SessionState"]

SESSION_COOKIE = "__Host-scout_session"
USER_AGENT = "scoutctl/0.1.0"
DEFAULT_TIMEOUT = 30.0
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))
# A kept-alive connection idle longer than this is not reused for a POST: if the server closed it
# meanwhile, resending could not tell whether the POST (a rotation, say) had been done.
POST_REUSE_IDLE = 2.0

Json = Any


class ScoutError(Exception):
    """The API answered with a problem (RFC 9457), or could not be reached (`status` 0)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_uri: str = "about:blank",
        retry_after: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type_uri = type_uri
        self.retry_after = retry_after
        self.problem: dict[str, Any] = dict(problem or {})

    @property
    def problem_type(self) -> str:
        """The last part of the problem type URI, e.g. `api-key-rotated`."""
        return self.type_uri.rsplit("/", 1)[-1] if self.type_uri != "about:blank" else ""

    def __str__(self) -> str:
        text = self.detail or self.title
        kind = f" [{self.problem_type}]" if self.problem_type else ""
        return f"{text} (HTTP {self.status}){kind}" if self.status else text


class ScoutUnreachable(ScoutError):
    """No HTTP answer: DNS, connection, TLS or timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Unreachable", detail)


@dataclass
class SessionState:
    """What a signed-in client must keep: the cookie and the CSRF token (and who, until when)."""

    url: str
    cookie: str
    csrf_token: str
    email: str = ""
    expires_at: str = ""
    ca_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionState:
        return cls(
            url=str(data["url"]),
            cookie=str(data["cookie"]),
            csrf_token=str(data["csrf_token"]),
            email=str(data.get("email", "")),
            expires_at=str(data.get("expires_at", "")),
            ca_file=data.get("ca_file") or None,
        )


def check_https(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "http":
        raise ValueError(
            f"refusing {url}: plain http:// would send passwords, cookies and keys unencrypted; "
            "use the gateway's https:// URL"
        )
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an https:// URL")
    return url


class ScoutClient:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        session: SessionState | None = None,
        ca_file: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = check_https(url)
        if api_key is not None and session is not None:
            # The gateway refuses a request carrying both (400 ambiguous-credentials).
            raise ValueError("use either an API key or a session, not both")
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port or 443
        self._prefix = parts.path.rstrip("/")
        self.api_key = api_key
        self.session = session
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=ca_file)
        self._connection: http.client.HTTPSConnection | None = None
        self._last_used = 0.0

    # ---- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ScoutClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _headers(self, method: str) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key is not None:
            headers["X-API-Key"] = self.api_key
        elif self.session is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.session.cookie}"
            if method in UNSAFE:
                headers["X-CSRF-Token"] = self.session.csrf_token
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Json = None,
        authenticate: bool = True,
    ) -> tuple[int, http.client.HTTPMessage, Json]:
        """One call; returns (status, headers, decoded body) for 2xx, raises ScoutError else."""
        target = self._prefix + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urlencode(params)
        headers = self._headers(method) if authenticate else {"User-Agent": USER_AGENT}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method == "POST" and time.monotonic() - self._last_used > POST_REUSE_IDLE:
            self.close()
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=self._context
                )
            try:
                self._connection.request(method, target, body=payload, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise ScoutUnreachable(
                    f"the certificate of {self._host} is not trusted ({exc.verify_message}); "
                    "pass the CA with --ca-file or SCOUT_CA_FILE"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # The server closed a kept-alive connection: one fresh try, except for a POST,
                # which might have been done (a POST only reuses a connection used just now).
                retry = reused and attempt == 1 and method != "POST"
                if retry and not isinstance(exc, socket.timeout):
                    continue
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ScoutUnreachable(
                    f"cannot reach {self._host}:{self._port}: {reason or type(exc).__name__}"
                ) from None
            self._last_used = time.monotonic()
            if response.will_close:
                self.close()
            decoded = _decode(data)
            if response.status >= 400:
                raise _problem(response.status, response.headers, decoded)
            return response.status, response.headers, decoded
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, **kwargs: Any) -> Json:
        return self.request(method, path, **kwargs)[2]

    # ---- sessions ------------------------------------------------------------------------------

    def login(self, email: str, password: str) -> Json:
        """Sign in; the client keeps the session (see `session`) for the next calls."""
        if self.api_key is not None:
            raise ValueError("this client uses an API key; make one without it to sign in")
        _, headers, body = self.request(
            "POST",
            "/api/v1/auth/login",
            body={"email": email, "password": password},
            authenticate=False,
        )
        cookie = _session_cookie(headers)
        if cookie is None:
            raise ScoutError(502, "Bad Gateway", "the login answer carried no session cookie")
        self.session = SessionState(
            url=self.url,
            cookie=cookie,
            csrf_token=body["csrf_token"],
            email=body.get("user", {}).get("email", email),
            expires_at=body.get("expires_at") or "",
        )
        return body

    def logout(self) -> None:
        self._call("POST", "/api/v1/auth/logout")
        self.session = None

    def current_session(self) -> Json:
        return self._call("GET", "/api/v1/auth/session")

    def sessions(self) -> Json:
        return self._call("GET", "/api/v1/auth/sessions")

    def revoke_session(self, session_id: str) -> None:
        self._call("DELETE", f"/api/v1/auth/sessions/{quote(session_id, safe='')}")

    def revoke_other_sessions(self) -> Json:
        return self._call("DELETE", "/api/v1/auth/sessions")

    def change_password(self, current_password: str, new_password: str) -> Json:
        return self._call(
            "POST",
            "/api/v1/auth/password",
            body={"current_password": current_password, "new_password": new_password},
        )

    def sign_in_activity(
        self,
        limit: int | None = None,
        page_token: str | None = None,
        types: Sequence[str] = (),
    ) -> Json:
        """`types`: only events of these types (login.failed, password.changed, ...)."""
        return self._call(
            "GET",
            "/api/v1/auth/activity",
            query={"limit": limit, "page_token": page_token, "type": ",".join(types) or None},
        )

    def whoami(self) -> Json:
        return self._call("GET", "/api/v1/whoami")

    # ---- servers and keys ----------------------------------------------------------------------

    def create_server(self, name: str) -> Json:
        """{"server": ..., "api_key": ...}: the only time the key is shown."""
        return self._call("POST", "/api/v1/servers", body={"name": name})

    def list_servers(self, limit: int | None = None, page_token: str | None = None) -> Json:
        return self._call(
            "GET", "/api/v1/servers", query={"limit": limit, "page_token": page_token}
        )

    def iter_servers(self) -> Iterator[dict[str, Any]]:
        yield from self._pages(self.list_servers, "servers")

    def get_server(self, server_id: str) -> Json:
        return self._call("GET", _server_path(server_id))

    def delete_server(self, server_id: str) -> None:
        self._call("DELETE", _server_path(server_id))

    def update_server(
        self, server_id: str, *, name: str | None = None, paused: bool | None = None
    ) -> Json:
        """Rename a server, or pause (True) or resume (False) its monitoring."""
        body = {k: v for k, v in (("name", name), ("paused", paused)) if v is not None}
        return self._call("PATCH", _server_path(server_id), body=body)

    def rotate_key(self, server_id: str, grace_seconds: int | None = None) -> Json:
        """{"api_key", "server", "old_key_valid_until"}; the old key stops working at once
        unless `grace_seconds` keeps it valid that long."""
        body = {"grace_seconds": grace_seconds} if grace_seconds is not None else None
        return self._call("POST", _server_path(server_id, "/api-key/rotate"), body=body)

    def activity(
        self,
        server_id: str,
        limit: int | None = None,
        page_token: str | None = None,
        types: Sequence[str] = (),
    ) -> Json:
        """`types`: only events of these types (key.rotated, key.rejected, ...)."""
        return self._call(
            "GET",
            _server_path(server_id, "/activity"),
            query={"limit": limit, "page_token": page_token, "type": ",".join(types) or None},
        )

    def iter_activity(self, server_id: str) -> Iterator[dict[str, Any]]:
        def page(limit: int | None = None, page_token: str | None = None) -> Json:
            return self.activity(server_id, limit, page_token)

        yield from self._pages(page, "events")

    # ---- metrics -------------------------------------------------------------------------------

    def post_metrics(self, samples: list[dict[str, Any]]) -> Json:
        """Post samples with the server's API key: [{"ts": ..., "metrics": {name: value}}]."""
        return self._call("POST", "/api/v1/metrics", body={"samples": samples})

    def query_metrics(
        self,
        server_id: str,
        names: list[str],
        *,
        start: str | float | None = None,
        end: str | float | None = None,
        step: str | None = None,
        points: int | None = None,
    ) -> Json:
        return self._call(
            "GET",
            _server_path(server_id, "/metrics"),
            query={
                "names": ",".join(names),
                "from": start,
                "to": end,
                "step": step,
                "points": points,
            },
        )

    def latest_metrics(self, server_id: str) -> Json:
        return self._call("GET", _server_path(server_id, "/metrics/latest"))

    def metric_names(self, server_id: str) -> Json:
        return self._call("GET", _server_path(server_id, "/metric-names"))

    def openapi(self) -> Json:
        return self._call("GET", "/api/v1/openapi.json", authenticate=False)

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _pages(fetch: Any, field: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = fetch(limit=200, page_token=token)
            yield from page.get(field, [])
            token = page.get("next_page_token")
            if not token:
                return


def _server_path(server_id: str, suffix: str = "") -> str:
    return f"/api/v1/servers/{quote(server_id, safe='')}{suffix}"


def _decode(data: bytes) -> Json:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return {"detail": data[:200].decode("utf-8", "replace")}


def _problem(status: int, headers: http.client.HTTPMessage, body: Json) -> ScoutError:
    problem = body if isinstance(body, dict) else {}
    return ScoutError(
        status,
        str(problem.get("title") or http.client.responses.get(status, "Error")),
        str(problem["detail"]) if problem.get("detail") else None,
        type_uri=str(problem.get("type") or "about:blank"),
        retry_after=headers.get("Retry-After"),
        problem=problem,
    )


def _session_cookie(headers: http.client.HTTPMessage) -> str | None:
    for raw in headers.get_all("Set-Cookie") or []:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            continue
        morsel = jar.get(SESSION_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None
