"""auth_service: accounts, users, passwords, login and sessions (gRPC).

Users and accounts live in PostgreSQL (schema `auth`); passwords are argon2id hashes
(`passwords`). Sessions live in Redis under a hash of their token, so a Redis dump never yields a
working cookie.
"""
