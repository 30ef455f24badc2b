"""devstack: `make run`, the whole system on one machine (development only).

`stack` runs it in order: the dev CA and certificate (`certs`) and the internal JWT key pair
(`jwt_keys`) in the data folder; PostgreSQL and Redis from DATABASE_URL / REDIS_URL, or private
instances from the installed programs (`binaries`, `postgres`, `redis_server`); migrations and the
demo account through scout-admin's code (`seed`); then every replica on free ports (`ports`,
`topology`) as a child process with its output prefixed by name (`processes`), each waited for
until it serves (`readiness`); then what to do next is printed (`report`). SIGINT/SIGTERM, or a
child exiting, stops the children in reverse order (gateways first) and then the data stores.
"""
