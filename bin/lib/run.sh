# Sourced by bin/dsync and bin/dsyncd (which set $entry): runs src/cli/$entry with plain node from the compiled build
# (dist/, made by `npm run build`) when it is there and no source file is newer than it; in a
# development checkout with newer sources, from source through tsx's loader. Either way one
# process, so signals (SIGTERM, SIGHUP, SIGKILL) reach the program itself.
root=$(dirname "$(dirname "$(readlink -f "$0")")")
. "$root/bin/lib/dist-current.sh"
if dist_current; then
  exec node "$root/dist/src/cli/$entry.js" "$@"
fi
if [ ! -f "$root/node_modules/tsx/dist/loader.mjs" ]; then
  echo "$entry: no compiled build (npm run build) and no tsx to run the sources (npm ci)" >&2
  exit 1
fi
exec node --import "$root/node_modules/tsx/dist/loader.mjs" "$root/src/cli/$entry.ts" "$@"
