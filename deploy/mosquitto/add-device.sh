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
. "$(dirname "$0")/account.sh"

need_args 2 "PASSWORD_FILE DEVICE" "$@"
file=$1
what=device
name=$2

[ -n "$name" ] || refuse "it is empty"
case $name in
    */*) refuse "it contains '/'" ;;
    *+*) refuse "it contains '+'" ;;
    *"#"*) refuse "it contains '#'" ;;
    *:*) refuse "it contains ':'" ;;
    '$'*) refuse "a leading '\$' is reserved for the broker" ;;
esac
if [ -n "$(service_role "$name")" ]; then
    refuse "it is a Vigil service's account name (vigil-bridge, vigil-alerting, vigil-dashboard, vigil-status, or one of them followed by '-'; see add-service.sh)"
fi
if [ "$(printf '%s' "$name" | wc -l)" -gt 0 ] || printf '%s' "$name" | LC_ALL=C grep -q '[[:space:][:cntrl:]]'; then
    refuse "it contains whitespace or a control character"
fi
refuse_long

set_password "$file" "${MOSQUITTO_DEVICE_PASSWORD:-}"
echo "device '$name' may now publish on vigil/readings/$name/# and vigil/status/$name" \
     "(run: systemctl reload mosquitto)"
