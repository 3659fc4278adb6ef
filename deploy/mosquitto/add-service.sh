#!/bin/sh
# Add a Vigil service's MQTT account (or change its password): one account per running process.
#
#   deploy/mosquitto/add-service.sh /etc/mosquitto/passwd /etc/mosquitto/vigil.acl vigil-bridge
#   deploy/mosquitto/add-service.sh /etc/mosquitto/passwd /etc/mosquitto/vigil.acl vigil-bridge-host2
#   MOSQUITTO_SERVICE_PASSWORD=... deploy/mosquitto/add-service.sh PASSWD ACL vigil-alerting-0
#
# mosquitto.conf sets use_username_as_clientid on every listener: Mosquitto replaces the client
# id a client asks for by its username, so an account is one MQTT session. A second process
# logging in with the same account would take the first one's connection and session, so every
# bridge of a shared subscription group, every partition of the rule engine and every dashboard
# needs an account of its own: vigil-bridge, vigil-alerting or vigil-dashboard, or one of them
# followed by "-" and a suffix (vigil-bridge-host2, vigil-alerting-0, vigil-dashboard-2).
#
# vigil.acl grants vigil-bridge, vigil-alerting and vigil-dashboard what they use. For another
# account the script appends to the ACL file a block with the same grants as its role's block
# (the `topic` lines under `user vigil-<role>`, including those you have added there), once.
# After installing a newer vigil.acl, run it again for each such account.
set -eu
. "$(dirname "$0")/account.sh"

need_args 3 "PASSWORD_FILE ACL_FILE ACCOUNT   (ACCOUNT: vigil-bridge, vigil-alerting, vigil-dashboard or vigil-status[-SUFFIX])" "$@"
file=$1
acl=$2
what=account
name=$3

role=$(service_role "$name")
case ${name#"$role"} in
    "$name" | -) refuse "a service account is vigil-bridge, vigil-alerting, vigil-dashboard or vigil-status, optionally followed by '-' and a suffix" ;;
    *[!A-Za-z0-9._-]*) refuse "the suffix may contain only letters, digits, '.', '_' and '-'" ;;
esac
refuse_long
[ -f "$acl" ] || { echo "$0: no ACL file at '$acl' (install deploy/mosquitto/vigil.acl first)" >&2; exit 2; }

# The role's grants: the `topic` lines of its block (up to the next `user` line or section).
grants=$(awk -v role="$role" '
    $1 == "user" { inside = ($2 == role && NF == 2); next }
    /^# ---/ { inside = 0; next }
    inside && $1 == "topic" { print }
' "$acl")
[ -n "$grants" ] || { echo "$0: '$acl' has no 'user $role' block with topic lines" >&2; exit 2; }

set_password "$file" "${MOSQUITTO_SERVICE_PASSWORD:-}"

if [ "$name" != "$role" ] && ! grep -qx "user $name" "$acl"; then
    printf '\n# --- %s: the grants of %s (added by add-service.sh) ---\nuser %s\n%s\n' \
        "$name" "$role" "$name" "$grants" >> "$acl"
    echo "added 'user $name' to $acl with the grants of $role"
fi
echo "account '$name' is ready; its service logs in with VIGIL_BROKER=mqtt://$name@HOST:PORT" \
     "and VIGIL_MQTT_PASSWORD (run: systemctl reload mosquitto)"
