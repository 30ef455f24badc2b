"""ingest_service: agent metrics into PostgreSQL (schema `ingest`), and queries over them (gRPC).

A server may write only its own samples (identity from the gateway's token). Samples are keyed by
(server, metric, time), so an agent that resends after a timeout creates no duplicates. A request
is acknowledged only after its samples are committed.
"""
