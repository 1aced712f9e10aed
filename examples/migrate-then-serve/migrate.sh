#!/bin/sh
# A one-shot job: "migrates" the database (here: writes data/schema) and exits 0.
# MIGRATE_FAIL=1 makes it fail, to see the server never start.
set -e
mkdir -p data
echo "migrating..."
sleep 1
if [ "${MIGRATE_FAIL:-0}" = 1 ]; then
    echo "migration failed" >&2
    exit 1
fi
echo "schema 42" > data/schema
echo "migrated"
