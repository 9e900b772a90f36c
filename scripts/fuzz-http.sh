#!/usr/bin/env bash
# Throws schemathesis (https://schemathesis.io, from PyPI) at every service's HTTP API, driven by
# the service's own /openapi.json: generated valid, invalid and hostile requests, stateful
# sequences, and every check (never a 5xx, every status and body as documented, schema-valid
# requests accepted, schema-violating ones refused). Afterwards every service must still be
# ready. Exits non-zero on any failure.
#
#   scripts/fuzz-http.sh                (FUZZ_SECONDS [30] per service, FUZZ_SEED [random])
#
# CI passes a fixed FUZZ_SEED, so that a run cannot fail on a finding an earlier run did not
# make; run it without one to explore (the seed of each run is printed in its log).
#
# The services run as processes (scripts/run-local.sh, release builds) against the local
# PostgreSQL and RabbitMQ, in databases and a vhost of their own, removed afterwards.
# Every request carries an operator's bearer token (minted with sagactl from the run's own
# AUTH_JWT_SECRET), so schemathesis reaches every operation; the edge tests in
# system-tests/tests/edges.rs cover requests without a token or with a bad one.
# schemathesis is installed once into a virtualenv under ~/.cache/saga-rs (SCHEMATHESIS_VENV).
# Settings and the one documented exception: scripts/fuzz/schemathesis.toml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

schemathesis_version=4.32.5
seconds=${FUZZ_SECONDS:-30}
seed_option=()
[[ -z ${FUZZ_SEED:-} ]] || seed_option=(--seed "$FUZZ_SEED")
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/saga-rs/schemathesis-$schemathesis_version}
pg=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
vhost=saga-fuzz
suffix=_fuzz

say() { printf '\n==> %s\n' "$*"; }

if [[ ! -x $venv/bin/schemathesis ]]; then
    say "installing schemathesis $schemathesis_version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

drop_everything() {
    for db in orders inventory payments; do
        psql "$pg/postgres" -X -q -c "DROP DATABASE IF EXISTS \"$db$suffix\" WITH (FORCE)" 2>/dev/null || true
    done
    rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
}
drop_everything

# run-local.sh provisions the vhost (users, permissions, topology) and starts each service as
# its own broker user; a secret of this run's own signs the tokens.
AUTH_JWT_SECRET="fuzz-http-$(date +%s%N)-a-secret-of-at-least-32-bytes"
export AUTH_JWT_SECRET
export DATABASE_SUFFIX=$suffix AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost" RUST_LOG=warn
say "starting the four services"
scripts/run-local.sh start >/dev/null
trap 'scripts/run-local.sh stop >/dev/null; drop_everything' EXIT
token=$(cargo run -q --release -p sagactl -- token --operator --subject schemathesis --lifetime 1h)

failed=()
for service in order-svc:8080 inventory-svc:8081 payment-svc:8082 notify-svc:8083; do
    name=${service%%:*}
    port=${service##*:}
    say "$name: schemathesis for ${seconds} s"
    # One worker: schemathesis' coverage phase is not thread-safe (it failed with an internal
    # error, not a finding, with two).
    if ! "$venv/bin/schemathesis" --no-color --config-file scripts/fuzz/schemathesis.toml \
        run "http://127.0.0.1:$port/openapi.json" --max-time "$seconds" --workers 1 \
        --request-timeout 10 --header "Authorization: Bearer $token" "${seed_option[@]}" \
        >"target/run-local/fuzz-$name.log" 2>&1; then
        failed+=("$name")
        tail -n 60 "target/run-local/fuzz-$name.log"
    fi
    grep -E '^  [0-9]+ generated|^Seed: ' "target/run-local/fuzz-$name.log" || true
done

say "every service still ready"
for port in 8080 8081 8082 8083; do
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")
    echo "127.0.0.1:$port/health/ready -> $status"
    [[ $status == 200 ]] || failed+=("ready:$port")
done

if ((${#failed[@]} > 0)); then
    printf '\nfuzz-http FAILED: %s (logs: target/run-local/fuzz-*.log)\n' "${failed[*]}" >&2
    exit 1
fi
printf '\nfuzz-http passed: no finding on any service.\n'
