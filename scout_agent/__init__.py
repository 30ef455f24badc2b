"""scout-agent: the lightweight agent that runs on each monitored server.

Design, in the order a sample travels:

- `config`: the env file (`/opt/scout-agent/agent.env`: SCOUTAPIKEY, SCOUTURL, ...), refused
  unless only its owner (root, when the agent runs as root) can read or change it, and unless the
  URL is https://. The key is only ever shown as its last four characters.
- `collect`: CPU, load, memory, swap, disks, network, uptime and processes from /proc and statvfs.
- `spool`: every sample is written to disk first (one fsynced file each), bounded, drop-oldest
  with the drops counted and reported as the metric `scout.agent.spool_dropped`.
- `transport`: one kept-alive HTTPS connection with certificate verification, gzip bodies.
- `agent`: the loop; sends the spool oldest first, backs off with jitter on outages, 5xx and
  429 (honouring Retry-After), waits for a new key on 401 and picks it up from the env file
  without a restart (polled every cycle, and on SIGHUP).
- `install`: writes the env file (0600, root) and the hardened systemd unit.

Only the standard library, Python 3.9+: the package also ships as one file,
`dist/scout-agent.pyz` (`python scripts/build_agent.py`).
"""

from __future__ import annotations

__version__ = "0.1.0"
