#!/bin/sh
# Make a private certificate authority and a server certificate for Mosquitto's TLS listener.
#
#   deploy/mosquitto/make-certs.sh DIR NAME [NAME...]
#
# NAME is each host name or IP address devices use to reach the broker (the first one is the
# certificate's common name). DIR receives ca.crt (copy it to every device and service),
# ca.key (keep it offline: it signs certificates), server.crt and server.key (for mosquitto.conf).
# An existing CA in DIR is reused, so running it again renews only the server certificate.
# With a public host name you may use a certificate from Let's Encrypt instead (docs/production.md).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 DIR NAME [NAME...]   (NAME: a host name or an IP address of the broker)" >&2
    exit 2
fi
dir=$1
shift
cn=$1
days=${VIGIL_CERT_DAYS:-825}

san=""
for name in "$@"; do
    case $name in
        "" | *[!A-Za-z0-9.:-]* | -*)
            echo "$0: '$name' is not a host name or an IP address" >&2
            exit 2 ;;
        *:*) entry="IP:$name" ;;        # IPv6
        *[!0-9.]*) entry="DNS:$name" ;;
        *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
done
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -subj "/CN=Vigil MQTT CA" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$cn" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.crt" -days "$days" -extfile "$dir/server.ext" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
echo "$dir/server.crt for $san, signed by $dir/ca.crt (valid $days days)"
