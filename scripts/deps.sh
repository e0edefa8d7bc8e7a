#!/usr/bin/env bash
# The Debian packages the test command needs, in one list (scripts/test.sh and .ci/run both
# run this script):
#   build-essential  when `cc` is missing: the C compiler builds bundled SQLite and ring
#   openssl          the TLS tests make their certificates with the `openssl` CLI
#   postgresql       the relay suite's PostgreSQL run and the multi-node suite (scripts/services.sh
#                    starts a private cluster; the package's own service is not used). Not needed
#                    when SAFESTREAM_TEST_PG names a server already.
#   redis-server     the multi-node suite starts its own redis-server processes
#   faketime         moves a simulated device's wall clock a day ahead or behind
#                    (tests/tests/clock.rs: the device cannot dodge a command by its clock)
#   chromium         the console's end-to-end test (tests/console: playwright-core drives
#                    Debian's headless Chromium; no browser is downloaded)
#
#   scripts/deps.sh   installs the missing ones when run as root (apt-get update -qq once, then
#                     apt-get install -y -qq), else names them and exits 1; nothing to do: exit 0.
#
# The checks use shell builtins only (command -v, globs).
set -euo pipefail
log() { echo "deps: $*" >&2; }

# The missing packages, one a line.
missing() {
  command -v cc >/dev/null || echo build-essential
  command -v openssl >/dev/null || echo openssl
  if [ -z "${SAFESTREAM_TEST_PG:-}" ]; then
    local pg=(/usr/lib/postgresql/*/bin/pg_ctl)
    [ -x "${pg[0]}" ] || echo postgresql
  fi
  command -v redis-server >/dev/null || echo redis-server
  command -v faketime >/dev/null || echo faketime
  command -v chromium >/dev/null || echo chromium
}

# The effective user id (a function, so the non-root path can be exercised by overriding it).
euid() { echo "$EUID"; }

main() {
  local need
  mapfile -t need < <(missing)
  if [ ${#need[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(euid)" != 0 ]; then
    log "missing Debian packages: ${need[*]}"
    log "install them (as root): apt-get update && apt-get install -y ${need[*]}"
    log "(or run this command as root: it installs them itself)"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # Check the install gave what was missing.
  mapfile -t need < <(missing)
  if [ ${#need[@]} -gt 0 ]; then
    log "still missing after apt-get install: ${need[*]}"
    exit 1
  fi
}

# Sourced (for a test of the functions): define only. Run: do it.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
