# envdump.sh DIR: writes the environment and working directory to
# DIR/env.$RUNNER_APP.$RUNNER_INSTANCE_ID, then sleeps until stopped.
f="$1/env.$RUNNER_APP.$RUNNER_INSTANCE_ID"
{ env; echo "CWD=$(pwd -P)"; } > "$f.tmp" && mv "$f.tmp" "$f"
exec sleep 1000
