#!/bin/sh
# Starts PostgreSQL for the web-and-db example. Runner runs it as the postgres user
# (uid = "postgres"), so everything it creates belongs to postgres.
#   PGDATA  data directory, also the directory of the Unix socket (default below)
#   PGPORT  port number; with listen_addresses='' it only names the socket file
set -eu
PGDATA="${PGDATA:-/tmp/runner-example-pgdata}"
PGPORT="${PGPORT:-5433}"
bin=/usr/lib/postgresql/15/bin

# First start: create and initialise the data directory (postgres wants it 0700).
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    echo "db: initialising $PGDATA"
    "$bin/initdb" --pgdata="$PGDATA" --username=postgres --auth=trust \
        --encoding=UTF8 --no-locale --no-sync >/dev/null
fi

# exec: postgres becomes the instance's main process, so runner's signals reach it
# directly and its READY=1 is attributed to this instance.
exec "$bin/postgres" -D "$PGDATA" -p "$PGPORT" -k "$PGDATA" -c listen_addresses=''
