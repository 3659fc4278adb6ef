#!/bin/sh
# Add a device (or change its password) in Mosquitto's password file, refusing names that
# would break the access list.
#
#   deploy/mosquitto/add-device.sh /etc/mosquitto/passwd pi-1        # asks for the password
#   MOSQUITTO_DEVICE_PASSWORD=... deploy/mosquitto/add-device.sh /etc/mosquitto/passwd pi-1
#
# vigil.acl lets user U publish on vigil/readings/U/#. Mosquitto (2.0.11, measured) substitutes
# a username containing '/' as it is: a user named "pi/1" could publish on vigil/readings/pi/1,
# which is device "pi", sensor "1". So a device's username must be a valid device name, the same
# rule as topics: no '/', '+', '#', whitespace or control characters, no leading '$', at most
# 128 bytes (and no ':', which the password file uses as its separator). Nor a service's account
# name (add-service.sh): mosquitto.conf makes the username the client id, so a device named
# like a service would be that service's session.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 PASSWORD_FILE DEVICE" >&2
    exit 2
fi
file=$1
device=$2

refuse() {
    echo "$0: refusing device name '$device': $1" >&2
    exit 2
}
[ -n "$device" ] || refuse "it is empty"
case $device in
    */*) refuse "it contains '/'" ;;
    *+*) refuse "it contains '+'" ;;
    *"#"*) refuse "it contains '#'" ;;
    *:*) refuse "it contains ':'" ;;
    '$'*) refuse "a leading '\$' is reserved for the broker" ;;
    vigil-bridge | vigil-bridge-* | vigil-alerting | vigil-alerting-* | vigil-dashboard | vigil-dashboard-* | vigil-status | vigil-status-*)
        refuse "it is a Vigil service's account name (vigil-bridge, vigil-alerting, vigil-dashboard, vigil-status, or one of them followed by '-'; see add-service.sh)" ;;
esac
if [ "$(printf '%s' "$device" | wc -l)" -gt 0 ] || printf '%s' "$device" | LC_ALL=C grep -q '[[:space:][:cntrl:]]'; then
    refuse "it contains whitespace or a control character"
fi
if [ "$(printf '%s' "$device" | wc -c)" -gt 128 ]; then
    refuse "it is longer than 128 bytes"
fi

[ -e "$file" ] || { touch "$file" && chmod 600 "$file"; }
if [ -n "${MOSQUITTO_DEVICE_PASSWORD:-}" ]; then
    mosquitto_passwd -b "$file" "$device" "$MOSQUITTO_DEVICE_PASSWORD"
else
    mosquitto_passwd "$file" "$device"
fi
echo "device '$device' may now publish on vigil/readings/$device/# and vigil/status/$device" \
     "(run: systemctl reload mosquitto)"
