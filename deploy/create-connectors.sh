#!/bin/sh
# Creates (or updates: PUT is idempotent) every connector in /connectors/*.json through the REST
# API of the first worker that answers, as any Kafka Connect tool would. Each file is the
# connector's config; its name is the file's name.
set -eu
auth="${SLUICE_USER:-admin}:${SLUICE_PASSWORD:-sluice-admin}"
tls=""
[ -n "${SLUICE_CA:-}" ] && tls="--cacert $SLUICE_CA"
for url in ${SLUICE_URLS:-http://sluice-1:8083 http://sluice-2:8083 http://sluice-3:8083}; do
    i=0
    until curl -sf $tls "$url/health" >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 60 ] || break; sleep 2
    done
    curl -sf $tls "$url/health" >/dev/null 2>&1 && break
done
echo "creating connectors through $url"
for f in /connectors/*.json; do
    name=$(basename "$f" .json)
    # A 409 during a rebalance is retried.
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        code=$(curl -s $tls -u "$auth" -o /tmp/answer -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
            --data @"$f" "$url/connectors/$name/config")
        case $code in
            200 | 201) echo "  $name: $code"; break ;;
            409) sleep 3 ;;
            *) echo "  $name: $code $(cat /tmp/answer)"; exit 1 ;;
        esac
    done
done
