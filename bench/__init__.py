"""Server Scout benchmarks: `make bench` (`python -m bench`).

Figures, never assertions: each scenario prints req/s, p50 and p99 and its ratio to a bare aiohttp
TLS hello measured in the same run on the same machine with the same client, so a slower or busier
machine moves both sides of the ratio together.

Design:
- `environment` creates a private PostgreSQL database, Redis key prefix, development CA and
  internal signing keys, and removes the database and keys again at the end.
- `processes` runs every server in its own process, through its real entry point (`python -m
  gateway`, `python -m key_service`, ... and `python -m bench.hello` for the baseline), so the load
  generator never shares an event loop (or a GIL) with the code it measures.
- `load` drives HTTP/1.1 keep-alive connections for a fixed time: with `wrk` when it is on PATH,
  otherwise with a small asyncio client (a raw protocol, cheaper per request than aiohttp's
  client, so that the client is less often the bottleneck on a small machine).
- `scenarios` are the measurements the issues ask for; `report` prints the table and the JSON.
"""
