#!/usr/bin/env bash
# Install Debian packages for a tool the project needs, unless the tool is already on PATH.
#   scripts/install-debian.sh COMMAND PACKAGE...
# e.g. Chromium for the browser tests, wrk for `make bench` (see the Makefile).
set -euo pipefail
command_name="${1:?usage: install-debian.sh COMMAND PACKAGE...}"
shift
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
command -v "$command_name"
