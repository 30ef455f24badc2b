"""key_service: monitored servers and their API keys (gRPC, PostgreSQL schema `keys`).

Design:
- A key is 32 CSPRNG bytes as 64 lowercase hex characters, returned once (creation, rotation) and
  stored only as SHA-256 plus a 4-character hint. The gateway sends the hash, never the key.
- ValidateKey answers a status as data (VALID, NOT_FOUND, ROTATED, REVOKED) plus the server and
  account. Dead keys still being tried are recorded as `key.rejected` (at most once a minute).
- ValidateKey, behind every gateway cache miss, is one prepared statement per database session.
- Rotation and revocation commit in PostgreSQL first (with the ended keys in the outbox of the same
  transaction; a rotation is one call of the `keys.rotate_key` function, migration 0004); then an
  invalidation is published on Redis pub/sub (a versioned protobuf message, see `events`) and the
  service waits, boundedly, for every subscribed gateway to acknowledge it before answering, so
  that once the caller has the answer no gateway still holds the old key in its cache. If Redis
  is down the rotation still stands: gateways that are not subscribed do not trust their caches.
- "Last used" arrives in batches from the gateways (RecordKeyUsage): no write per request.
"""
