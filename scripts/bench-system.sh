#!/usr/bin/env bash
# The system benchmark: starts the four services (release builds) as processes against the
# local PostgreSQL and RabbitMQ, in databases and a vhost of its own, and measures
#   1. saturation: closed loop, BENCH_CLIENTS clients each waiting for its order to end
#      (--wait-terminal, so the clients bound the sagas in flight), completed orders per second;
#   2. latency at 50 % and 80 % of saturation, and at 100 orders/s (with each service's memory);
#   3. where the CPU goes: CPU time per order of each service, PostgreSQL and RabbitMQ during
#      the saturation and the 100 orders/s runs (from /proc), and the kernel's share;
#   4. the physical limits, the same way on the same machine: PostgreSQL's rate for one saga
#      step (pgbench, scripts/bench/saga-step.sql) and RabbitMQ's publish/consume rates (lapin).
# Results (JSON and SVG reports) go to target/bench/; a summary is printed for BENCHMARKS.md.
#
# The services run as in production (scripts/run-local.sh): each with its own PostgreSQL role
# and RabbitMQ user, every API call authenticated. loadgen mints its tokens with the same HS256
# secret (AUTH_JWT_SECRET, exported here and passed on by run-local.sh) and watches terminal
# events as the broker's administrator (guest: the services' users may not bind a queue).
#
#   scripts/bench-system.sh            (BENCH_SECONDS [30] per load phase, BENCH_CLIENTS [64])
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=target/bench
mkdir -p "$out"
seconds=${BENCH_SECONDS:-30}
clients=${BENCH_CLIENTS:-64}
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
# The administrator, for loadgen's observer; run-local.sh provisions the services' own users.
rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*'

export DATABASE_SUFFIX=_bench AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
export RUST_LOG=warn LOG_FORMAT=json ORDER_SAGA_TIMEOUT_SECS=120
# One HS256 secret for the services (run-local.sh passes it on) and loadgen (which reads it from
# the environment, not from its command line, where ps would show it). Its tokens are HS256
# without issuer or audience: a key file, issuer or audience inherited from this shell would make
# the services refuse them.
export AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-saga-bench: a development secret for benchmarks only}
unset AUTH_JWT_PUBLIC_KEY_FILE AUTH_JWT_ALGORITHM AUTH_JWT_ISSUER AUTH_JWT_AUDIENCE
cargo build --release -q -p loadgen
scripts/run-local.sh start >/dev/null
trap 'scripts/run-local.sh stop >/dev/null' EXIT
target_dir=${CARGO_TARGET_DIR:-$root/target}
[[ $target_dir == /* ]] || target_dir="$root/$target_dir"
loadgen() { "$target_dir/release/loadgen" --amqp-url "$AMQP_URL" --quiet --settle-timeout 120 "$@"; }

# CPU time (clock ticks) by component, summed over live processes: the services, PostgreSQL's
# backends (which live as long as the services' pools), RabbitMQ's Erlang VM.
cpu_ticks() {
    local pid comm stat
    for stat in /proc/[0-9]*/stat; do
        pid=${stat#/proc/}
        pid=${pid%/stat}
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        case $comm in
        order-svc | inventory-svc | payment-svc | notify-svc | loadgen | postgres) ;;
        beam.smp) comm=rabbitmq ;;
        *) continue ;;
        esac
        # Fields 14 and 15 (utime, stime), counted from the end of the command name.
        awk -v name="$comm" '{ sub(/^.*\) /, ""); print name, $12 + $13 }' "$stat" 2>/dev/null
    done | awk '{ ticks[$1] += $2 } END { for (name in ticks) print name, ticks[name] }' | sort
}
kernel_ticks() { awk '/^cpu / { print $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
# cpu_profile <before-file> <after-file> <orders>: milliseconds of CPU per order by component.
cpu_profile() {
    local hz
    hz=$(getconf CLK_TCK)
    join "$1" "$2" | awk -v orders="$3" -v hz="$hz" '
        { ms = ($3 - $2) * 1000 / hz / orders; total += ms; printf "  %-14s %6.2f ms/order\n", $1, ms }
        END { printf "  %-14s %6.2f ms/order\n", "total", total }'
}
profiled() { # profiled <name> <loadgen args...>: runs loadgen and profiles the CPU it caused
    local name=$1
    shift
    cpu_ticks >"$out/$name.cpu-before"
    read -r kernel_before all_before < <(kernel_ticks)
    loadgen "$@" --json "$out/$name.json" --svg "$out/$name.svg" | tee "$out/$name.txt"
    read -r kernel_after all_after < <(kernel_ticks)
    cpu_ticks >"$out/$name.cpu-after"
    local orders
    orders=$(json "$out/$name.json" "d['counts']['created']")
    {
        echo "CPU per order, $name ($orders orders):"
        cpu_profile "$out/$name.cpu-before" "$out/$name.cpu-after" "$orders"
        echo "  kernel (system + irq + softirq) share of all CPU time: $(( (kernel_after - kernel_before) * 100 / (all_after - all_before) )) %"
    } | tee "$out/$name.profile.txt"
}

say "warm-up"
loadgen --rate 50 --duration 5 >/dev/null

say "saturation: closed loop, $clients clients each waiting for its order to end, $seconds s, every order meant to complete"
profiled saturation --concurrency "$clients" --wait-terminal --duration "$seconds" --fail-stock 0 --fail-payment 0
saturation=$(json "$out/saturation.json" "d['throughput']['completed_per_sec']")
sleep 5

for percent in 50 80; do
    rate=$(python3 -c "print(max(1, int($saturation * $percent / 100)))")
    say "open loop at $percent % of saturation: $rate orders/s, $seconds s"
    loadgen --rate "$rate" --duration "$seconds" --json "$out/open-$percent.json" --svg "$out/open-$percent.svg" | tee "$out/open-$percent.txt"
    sleep 5
done

say "open loop at 100 orders/s, $seconds s, with each service's resident memory"
profiled open-100 --rate 100 --duration "$seconds" >"$out/open-100.log" &
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
cat "$out/open-100.log"
echo "resident memory at the end of the 100 orders/s run:$peak"

say "PostgreSQL limit: one saga step per transaction (pgbench, 8 clients, 20 s)"
psql "$pg/postgres" -X -q -c "CREATE DATABASE pgbench_saga"
psql "$pg/pgbench_saga" -X -q -f scripts/bench/saga-step-setup.sql
pgbench -n -c 8 -j 2 -T 20 -f scripts/bench/saga-step.sql "$pg/pgbench_saga?sslmode=disable" | tee "$out/pgbench.txt"
psql "$pg/postgres" -X -q -c "DROP DATABASE pgbench_saga WITH (FORCE)"

say "RabbitMQ limits (lapin)"
RELAY_BENCH_ONLY_RAW=1 cargo bench -q -p outbox --bench relay 2>/dev/null | grep '^|' | tee "$out/rabbitmq.txt"

say "summary"
echo "saturation (closed loop, $clients clients waiting for their orders): $saturation completed orders/s"
cat "$out/saturation.profile.txt" "$out/open-100.profile.txt"
for run in saturation open-50 open-80 open-100; do
    json "$out/$run.json" "'$run: ' + str(d['throughput']) + ' | POST ms ' + str(d['post_latency_ms']) + ' | to terminal ms ' + str(d['terminal_latency_ms'])"
done
