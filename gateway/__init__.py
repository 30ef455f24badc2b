"""gateway: the public HTTPS edge of Server Scout (aiohttp). Stateless; run as many as needed.

Per request: a request id is adopted or made (`middlewares`), the caller is authenticated once
(`authn`: X-API-Key through the key cache or the key service; the session cookie through the
auth service), and the call goes to the service behind with a short-lived EdDSA identity token
(`backends`). Validated keys are cached in memory (`keycache`) only while the Redis invalidation
subscription is live (`invalidation`), so a rotated key is refused by every replica at once.
Plain HTTP is answered by a separate app that never reads credentials. Both are served by
`runner.GatewayRunner`, which answers what aiohttp's parser refuses with the gateway's own
problem+json, and logs none of its bytes.
"""
