"""scoutctl: the Server Scout command line and the client library it is built on.

- `client`: `ScoutClient`, one method per API endpoint over HTTPS (standard library only), raising
  `ScoutError` with the RFC 9457 problem details; it sends the CSRF token for signed-in users.
- `store`: the session kept between commands (0600 file in the user's config directory).
- `cli`: the `scoutctl` commands: tables for people, `--json` for scripts, documented exit codes.
"""

__version__ = "0.1.0"
