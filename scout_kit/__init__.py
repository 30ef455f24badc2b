"""scout_kit: the small library every Server Scout service is built on.

It holds only what all services share: settings parsing (`settings`), structured logging with the
request id (`logging`, `context`), internal identity tokens (`identity`), the gRPC server bootstrap
with health, request-id, identity and metrics interceptors (`grpc_server`), gRPC client helpers
(`grpc_client`), the PostgreSQL pool and versioned migrations (`db`), the Redis client and key space
(`redis`), and a drivable clock (`clock`). Domain code lives in the services, never here.
"""
