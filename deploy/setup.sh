#!/usr/bin/env bash
# Set up Vigil from a checkout on Debian (run as root, or with sudo for apt-get):
#   bash deploy/setup.sh           server + edge, into ./.venv
#   bash deploy/setup.sh --dev     also the test tools and the servers the tests start
#                                  (mosquitto, influxd, victoria-metrics, chromium; openssl,
#                                  systemd-analyze, strace and docker-compose for the deploy checks)
# Idempotent: a second run installs only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Debian packages: command -> package
declare -A want=([python3]=python3)
if [ "$dev" = 1 ]; then
  want+=([mosquitto]=mosquitto [mosquitto_pub]=mosquitto-clients [influxd]=influxdb
         [victoria-metrics]=victoria-metrics [chromium]=chromium
         [openssl]=openssl [systemd-analyze]=systemd [strace]=strace [docker-compose]=docker-compose)
fi
if [ -f dashboard/web/package.json ]; then
  want+=([npm]=npm [node]=nodejs)
fi
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start their own services; the tests start private ones instead.
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment .venv"
  python3 -m venv .venv
fi
extras="server,edge"
[ "$dev" = 1 ] && extras="server,edge,dev"
say "installing vigil[$extras] into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"

if [ -f dashboard/web/package.json ]; then
  say "installing the dashboard's front-end packages (npm ci)"
  npm ci --prefix dashboard/web --no-audit --no-fund --silent
fi
say "set-up done"
