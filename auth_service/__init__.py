"""auth_service: accounts, users, passwords, login and sessions (gRPC).

Users and accounts live in PostgreSQL (schema `auth`); passwords are argon2id hashes checked off
the event loop and rehashed at login when the parameters change (`passwords`, `users`).

Sessions live in Redis under sha256 of their 256-bit token, so a Redis dump never yields a
working cookie; a per-user index lists and revokes them (`sessions`). Idle and absolute expiry
are decided against the injected Clock on every validation; Redis TTLs only collect garbage.
Failed logins are counted in Redis per account and address, per account, and per address
(`throttle`), and sign-in events are kept in `auth.activity` (`activity`). `domain` holds the use
cases; `servicer` maps them to gRPC, authorizing from the caller's identity token: the gateway's
service identity for Login/ValidateSession/Logout, the signed-in user's session for the rest.
If Redis or PostgreSQL is down, calls fail with UNAVAILABLE (never a session accepted).
"""
