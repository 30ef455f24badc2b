#!/bin/sh
# Run once by the postgres image when it creates the cluster (docker-compose.ha.yml mounts it in
# /docker-entrypoint-initdb.d): lets the standby stream from this server, with a password.
set -e
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
