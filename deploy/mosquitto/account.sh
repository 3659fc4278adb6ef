# Sourced by add-device.sh and add-service.sh (not run on its own): what both do with the MQTT
# account they add. Each script sets $what ("device", "account") and $name before calling these.

# need_args COUNT USAGE "$@": exit 2 with the usage unless there are COUNT arguments.
need_args() {
    [ $(($# - 2)) -eq "$1" ] || { echo "usage: $0 $2" >&2; exit 2; }
}

# refuse WHY: exit 2, saying why $name is refused.
refuse() {
    echo "$0: refusing $what name '$name': $1" >&2
    exit 2
}

# service_role NAME: the service whose account NAME is (vigil-bridge for vigil-bridge and
# vigil-bridge-*, likewise vigil-alerting, vigil-dashboard and vigil-status), or nothing.
service_role() {
    for role in vigil-bridge vigil-alerting vigil-dashboard vigil-status; do
        case $1 in "$role" | "$role"-*) echo "$role"; return ;; esac
    done
}

# refuse_long: refuse $name when it is longer than 128 bytes (the topics' rule for a name).
refuse_long() {
    [ "$(printf '%s' "$name" | wc -c)" -le 128 ] || refuse "it is longer than 128 bytes"
}

# set_password FILE PASSWORD: add $name to the password file FILE (made mode 600 if new) or change
# its password: PASSWORD, or asked for when it is empty.
set_password() {
    [ -e "$1" ] || { touch "$1" && chmod 600 "$1"; }
    if [ -n "$2" ]; then
        mosquitto_passwd -b "$1" "$name" "$2"
    else
        mosquitto_passwd "$1" "$name"
    fi
}
