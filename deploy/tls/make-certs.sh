#!/bin/sh
# Makes the compose stack's TLS files once: a CA, a certificate per worker (good for serving
# and, as workers call each other, as a client), and client certificates for the connector
# script and Prometheus. Run by the stack's one-shot `certs` service into the `tls` volume;
# DIR overrides where (the deploy test runs it into a temporary directory). Files that exist
# are kept, so the stack's certificates survive restarts.
set -eu
DIR=${DIR:-/tls}
mkdir -p "$DIR"
cd "$DIR"
[ -f ca.crt ] && [ -f ca.key ] || {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=sluice compose CA" -keyout ca.key -out ca.crt 2>/dev/null
}
issue() { # name, subjectAltName
    [ -f "$1.crt" ] && [ -f "$1.key" ] && return 0
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
for w in sluice-1 sluice-2 sluice-3; do
    issue "$w" "DNS:$w,DNS:localhost,IP:127.0.0.1"
done
issue connectors "DNS:connectors"
issue prometheus "DNS:prometheus"
# The workers run as the user sluice (uid 10001): let them read the keys.
chmod 0644 ./*.crt ./*.key
echo "TLS files in $DIR"
