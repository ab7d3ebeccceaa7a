#!/usr/bin/env bash
# Provisions the Debian tools the test suite uses (run by `npm test` as its pretest step, and by
# .ci/run): redis-server (the cache tests' backing store), promtool from prometheus (metrics
# lint) and systemd-analyze (unit file check). Installs what is missing when it can (root with
# apt-get); otherwise stops at once with the exact command to run. Never skips silently.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus)
command -v systemd-analyze >/dev/null || need+=(systemd)
((${#need[@]})) || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test-deps: installing ${need[*]} (Debian packages the tests use)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  exit 0
fi
echo "test-deps: the tests need ${need[*]}; install them first:" >&2
echo "  sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
exit 1
