# Sourced by bin/lib/run.sh and scripts/build-if-stale.sh: succeeds when dist/ holds a finished
# build (dist/.built) and no source file of $root is newer than it.
dist_current() {
  [ -f "$root/dist/.built" ] && [ -z "$(find "$root/src" "$root/protocol" -name '*.ts' -newer "$root/dist/.built" 2>/dev/null | head -n 1)" ]
}
