# stamp.sh FILE CODE [SECONDS]: appends "<ms since epoch> <pid>" to FILE, optionally
# sleeps, then exits with CODE.
echo "$(date +%s%3N) $$" >> "$1"
if [ -n "$3" ]; then sleep "$3"; fi
exit "$2"
