#!/usr/bin/env bash
# The system benchmark: starts the four services (release builds) as processes against the
# local PostgreSQL and RabbitMQ, in databases and a vhost of its own, and measures
#   1. saturation: closed loop, many clients, completed orders per second;
#   2. latency at 50 % and 80 % of saturation, and at 100 orders/s (with each service's memory);
#   3. the physical limits, the same way on the same machine: PostgreSQL's rate for one saga
#      step (pgbench, scripts/bench/saga-step.sql) and RabbitMQ's publish/consume rates (lapin).
# Results (JSON and SVG reports) go to target/bench/; a summary is printed for BENCHMARKS.md.
#
#   scripts/bench-system.sh            (BENCH_SECONDS [30] per load phase, BENCH_CLIENTS [16])
#
# Saturation is the closed loop's rate of completed orders over a burst of BENCH_SATURATION_ORDERS
# [4000], all meant to complete, measured until the last one completes: a closed loop bounds the
# POSTs in flight, not the sagas, and order-svc accepts orders several times faster than the
# sagas complete, so the burst must be small enough to drain before the saga deadline.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=target/bench
mkdir -p "$out"
seconds=${BENCH_SECONDS:-30}
clients=${BENCH_CLIENTS:-16}
burst=${BENCH_SATURATION_ORDERS:-4000}
pg=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
vhost=saga-bench

say() { printf '\n==> %s\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

say "fresh databases and vhost"
for db in orders_bench inventory_bench payments_bench pgbench_saga; do
    psql "$pg/postgres" -X -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done
rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
rabbitmqctl -q add_vhost "$vhost"
rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*'

export DATABASE_SUFFIX=_bench AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
export RUST_LOG=warn LOG_FORMAT=json ORDER_SAGA_TIMEOUT_SECS=120
cargo build --release -q -p loadgen
scripts/run-local.sh start >/dev/null
trap 'scripts/run-local.sh stop >/dev/null' EXIT
loadgen() { target/release/loadgen --amqp-url "$AMQP_URL" --quiet --settle-timeout 120 "$@"; }

say "warm-up"
loadgen --rate 50 --duration 5 >/dev/null

say "saturation: closed loop, $clients clients, $burst orders, every order meant to complete"
loadgen --concurrency "$clients" --orders "$burst" --fail-stock 0 --fail-payment 0 \
    --json "$out/saturation.json" --svg "$out/saturation.svg" | tee "$out/saturation.txt"
saturation=$(json "$out/saturation.json" "d['throughput']['completed_per_sec']")
sleep 5

for percent in 50 80; do
    rate=$(python3 -c "print(max(1, int($saturation * $percent / 100)))")
    say "open loop at $percent % of saturation: $rate orders/s, $seconds s"
    loadgen --rate "$rate" --duration "$seconds" --json "$out/open-$percent.json" --svg "$out/open-$percent.svg" | tee "$out/open-$percent.txt"
    sleep 5
done

say "open loop at 100 orders/s, $seconds s, with each service's resident memory"
loadgen --rate 100 --duration "$seconds" --json "$out/open-100.json" --svg "$out/open-100.svg" >"$out/open-100.txt" &
load=$!
peak=""
for _ in $(seq "$seconds"); do
    sleep 1
    sample=""
    for svc in order-svc inventory-svc payment-svc notify-svc; do
        pid=$(cat "target/run-local/$svc.pid")
        rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
        sample="$sample $svc=$((rss / 1024))MiB"
    done
    peak="$sample"
done
wait "$load"
cat "$out/open-100.txt"
echo "resident memory at the end of the 100 orders/s run:$peak"

say "PostgreSQL limit: one saga step per transaction (pgbench, 8 clients, 20 s)"
psql "$pg/postgres" -X -q -c "CREATE DATABASE pgbench_saga"
psql "$pg/pgbench_saga" -X -q -f scripts/bench/saga-step-setup.sql
pgbench -n -c 8 -j 2 -T 20 -f scripts/bench/saga-step.sql "$pg/pgbench_saga?sslmode=disable" | tee "$out/pgbench.txt"
psql "$pg/postgres" -X -q -c "DROP DATABASE pgbench_saga WITH (FORCE)"

say "RabbitMQ limits (lapin)"
RELAY_BENCH_ONLY_RAW=1 cargo bench -q -p outbox --bench relay 2>/dev/null | grep '^|' | tee "$out/rabbitmq.txt"

say "summary"
echo "saturation (closed loop, $clients clients): $saturation completed orders/s"
for run in saturation open-50 open-80 open-100; do
    json "$out/$run.json" "'$run: ' + str(d['throughput']) + ' | POST ms ' + str(d['post_latency_ms']) + ' | to terminal ms ' + str(d['terminal_latency_ms'])"
done
