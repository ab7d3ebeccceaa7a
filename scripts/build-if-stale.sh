#!/bin/sh
# `npm start` runs this first: compiles to dist/ when there is no build yet or a source file is
# newer than it (the same test bin/lib/run.sh makes to pick dist/ over the sources).
root=$(dirname "$(dirname "$(readlink -f "$0")")")
. "$root/bin/lib/dist-current.sh"
if dist_current; then
  exit 0
fi
echo "building dist/ (npm run build) …" >&2
cd "$root" && npm run -s build
