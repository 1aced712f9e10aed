# argv.sh OUT ARGS...: writes the arguments after OUT, one per line, then exits 0.
out="$1"; shift
printf '%s\n' "$@" > "$out.tmp" && mv "$out.tmp" "$out"
