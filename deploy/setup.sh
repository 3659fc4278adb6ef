#!/usr/bin/env bash
# Set up Vigil from a checkout on Debian (run as root, or with sudo for apt-get):
#   bash deploy/setup.sh               the server (vigil up, bridge, rules, dashboard) and the edge, into ./.venv
#   bash deploy/setup.sh --edge        only the edge agent, for a device such as a Raspberry Pi
#                                      (python3-venv and vigil[edge], not editable: no Node.js, no Mosquitto,
#                                      no server packages)
#   bash deploy/setup.sh --dev         the server, and everything the tests need (Mosquitto's clients, influxd,
#                                      victoria-metrics, nats-server, postgresql, chromium and libatomic1 for
#                                      the browser tests; openssl, systemd-analyze, strace and docker-compose
#                                      for the deploy checks)
#   bash deploy/setup.sh --print-plan [--edge|--dev]   print what that mode installs, install nothing
# Idempotent: a second run installs only what is missing. Each step says what it does, and
# apt, pip and npm show their own progress.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=server
plan=0
for arg in "$@"; do
  case "$arg" in
    --edge) mode=edge ;;
    --dev) mode=dev ;;
    --print-plan) plan=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | cut -c3-; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'; use --edge, --dev, --print-plan or --help" >&2; exit 2 ;;
  esac
done

# Debian packages, each as package=the commands Vigil or its tests run from it (none for a library).
edge_apt=(python3=python3 python3-venv=)
server_apt=(mosquitto=mosquitto,mosquitto_passwd
            # DejaVu Sans: report PDFs print names in Cyrillic, Greek, ... (docs/reports.md)
            fonts-dejavu-core=)
if [ -f dashboard/web/package.json ]; then
  server_apt+=(nodejs=node npm=npm)     # the dashboard serves uPlot from dashboard/web/node_modules
fi
dev_apt=(mosquitto-clients=mosquitto_pub,mosquitto_sub influxdb=influxd victoria-metrics=victoria-metrics
         # a three-node NATS cluster with its MQTT gateway: the clustered-broker test (docs/scaling.md)
         nats-server=nats-server
         # PostgreSQL's initdb and server: the rule-engine failover tests start private ones (no cluster on :5432)
         postgresql=
         chromium=chromium openssl=openssl systemd=systemd-analyze strace=strace docker-compose=docker-compose
         # Playwright's driver (a node binary in the venv) links libatomic.so.1; without it every
         # browser test fails at set-up on a fresh Debian.
         libatomic1=)
case "$mode" in
  edge) apt_plan=("${edge_apt[@]}"); extras="edge"; npm=0 ;;
  server) apt_plan=("${edge_apt[@]}" "${server_apt[@]}"); extras="server,edge"; npm=1 ;;
  dev) apt_plan=("${edge_apt[@]}" "${server_apt[@]}" "${dev_apt[@]}"); extras="server,edge,dev"; npm=1 ;;
esac
[ -f dashboard/web/package.json ] || npm=0
packages=("${apt_plan[@]%%=*}")

if [ "$plan" = 1 ]; then
  echo "mode: $mode"
  echo "apt: ${packages[*]}"
  echo "commands: ${apt_plan[*]}"
  if [ "$mode" = edge ]; then echo "pip: .[$extras]"; else echo "pip: -e .[$extras]"; fi
  if [ "$npm" = 1 ]; then echo "npm: dashboard/web"; else echo "npm: none"; fi
  exit 0
fi

steps=$((2 + npm))
n=0
started=$SECONDS
step() {
  n=$((n + 1))
  printf '\033[1m==> [%d/%d] %s\033[0m\n' "$n" "$steps" "$*"
}

step "Debian packages for the $mode set-up: ${packages[*]}"
# Present: the package is installed, or every command it stands for is there (e.g. npm from a
# NodeSource nodejs, which conflicts with Debian's npm).
has_commands() {
  [ -n "$1" ] || return 1
  local cmd
  for cmd in ${1//,/ }; do command -v "$cmd" >/dev/null 2>&1 || return 1; done
}
missing=()
for entry in "${apt_plan[@]}"; do
  pkg=${entry%%=*}
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] \
    || has_commands "${entry#*=}" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "    missing: ${missing[*]}; apt-get update, then apt-get install (apt shows its progress)"
  $SUDO apt-get update
  # Debian's postgresql would make and start a cluster on :5432 that nothing of Vigil's uses (the failover
  # tests start private ones): tell postgresql-common not to, before it is installed.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false  # bash deploy/setup.sh --dev (Vigil)" \
      | $SUDO tee /etc/postgresql-common/createcluster.d/vigil.conf >/dev/null
  fi
  # The Debian packages start their own services (mosquitto, influxdb); the tests start private
  # ones on ports of their own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  # Debian's mosquitto.service, just installed, would take 127.0.0.1:1883 with Mosquitto's default
  # limits (20 in flight, 1,000 queued, then dropped), and `vigil up` would use it instead of the
  # Mosquitto it runs itself with Vigil's settings (docs/one-box.md). A Mosquitto that was here
  # before is the user's and left alone.
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null 2>&1; then
    if $SUDO systemctl disable --now mosquitto >/dev/null 2>&1; then
      echo "    stopped and disabled Debian's mosquitto.service: vigil up runs its own Mosquitto"
      echo "    (for a system-wide broker instead, see docs/production.md: systemctl enable --now mosquitto)"
    fi
  fi
else
  echo "    all installed"
fi

step "the virtual environment .venv and vigil[$extras] (pip shows each package)"
if [ ! -x .venv/bin/python ]; then
  echo "    creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --disable-pip-version-check --upgrade pip
if [ "$mode" = edge ]; then
  # A device gets a regular install: an editable one's import hook costs the agent 0.2 MiB of its
  # 25 MB (docs/edge.md, Footprint). Run this again after an update of the checkout.
  .venv/bin/python -m pip install --disable-pip-version-check ".[$extras]"
else
  .venv/bin/python -m pip install --disable-pip-version-check -e ".[$extras]"
fi

if [ "$npm" = 1 ]; then
  step "the dashboard's front-end packages (npm ci in dashboard/web)"
  npm ci --prefix dashboard/web --no-audit --no-fund
fi
printf '\033[1m==> set-up done in %ds (%s)\033[0m\n' "$((SECONDS - started))" "$mode"
if [ "$mode" = edge ]; then
  echo "    next: .venv/bin/vigil edge --help   (docs/edge.md)"
else
  echo "    next: .venv/bin/vigil up --demo     (README.md)"
fi
