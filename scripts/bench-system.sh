#!/usr/bin/env bash
# The system benchmark: starts the four services (release builds) as processes against the
# local PostgreSQL and RabbitMQ, in databases and a vhost of its own, and measures
#   1. saturation: closed loop, BENCH_CLIENTS clients each waiting for its order to end
#      (--wait-terminal, so the clients bound the sagas in flight), completed orders per second;
#   2. latency at 50 % and 80 % of saturation, and at 100 orders/s (with each service's memory);
#   3. where the CPU goes: CPU time per order of each service, PostgreSQL and RabbitMQ during
#      the saturation and the 100 orders/s runs (from /proc), and the kernel's share; the
#      transactions committed and the messages published and consumed per order (from the
#      databases' own counts), and the statements per order by database and by statement when
#      PostgreSQL loads pg_stat_statements (shared_preload_libraries; target/bench/*.statements.txt);
#   4. a soak: BENCH_SOAK_MINUTES [20] at 50 % of saturation with the 80/10/10 outcome mix,
#      per minute p50/p99 POST -> terminal, every service's resident memory, and the machine's
#      idle and stolen CPU (a shared host's steal shows as latency here) (0 skips it);
#   5. the physical limits, the same way on the same machine: PostgreSQL's rate for one saga
#      step (pgbench, scripts/bench/saga-step.sql) and RabbitMQ's publish/consume rates (lapin);
#      From 3 and 5, the floor: what an order's transactions and messages cost PostgreSQL and
#      RabbitMQ at their own measured unit costs, before the services use any CPU;
#   6. the outbox relay beside its closest Rust peer (cargo bench -p outbox --bench relay, and
#      scripts/bench-peer.sh: hexeract 0.6), in the same run (BENCH_PEER=0 skips it).
# Results (JSON and SVG reports) go to target/bench/; a summary is printed for BENCHMARKS.md.
#
# PostgreSQL is reached over its Unix socket (BENCH_PG_SOCKET [/var/run/postgresql]; empty: TCP
# loopback), by the services and by pgbench alike, so the ceiling is measured the way it is used.
#
# The services run as in production (scripts/run-local.sh): each with its own PostgreSQL role
# and RabbitMQ user, every API call authenticated. loadgen mints its tokens with the same HS256
# secret (AUTH_JWT_SECRET, exported here and passed on by run-local.sh) and watches terminal
# events as the broker's administrator (guest: the services' users may not bind a queue).
#
#   scripts/bench-system.sh   (BENCH_SECONDS [30] per load phase, BENCH_CLIENTS [64],
#                              BENCH_SOAK_MINUTES [20], BENCH_PEER [1], BENCH_PG_SOCKET)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=target/bench
mkdir -p "$out"
seconds=${BENCH_SECONDS:-30}
clients=${BENCH_CLIENTS:-64}
soak_minutes=${BENCH_SOAK_MINUTES:-20}
pg=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
pg_socket=${BENCH_PG_SOCKET-/var/run/postgresql}
# Query parameters of every benchmark connection: no TLS on loopback, the socket when there is one.
pg_params="sslmode=disable${pg_socket:+&host=$pg_socket}"
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
export RUST_LOG=warn LOG_FORMAT=json ORDER_SAGA_TIMEOUT_SECS=120 DATABASE_URL_PARAMS=$pg_params
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
loadgen() {
    "$target_dir/release/loadgen" --amqp-url "$AMQP_URL" --quiet --settle-timeout 120 \
        --watch-pid-dir target/run-local "$@"
}

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
        # Fields 14 to 17 (utime, stime, and cutime, cstime: the children it reaped, so that
        # PostgreSQL's backends count after they exit), counted from the end of the command name.
        awk -v name="$comm" '{ sub(/^.*\) /, ""); print name, $12 + $13 + $14 + $15 }' "$stat" 2>/dev/null
    done | awk '{ ticks[$1] += $2 } END { for (name in ticks) print name, ticks[name] }' | sort
}
# Transactions committed in the services' databases, and rows written to their outboxes (one per
# message published): what an order costs PostgreSQL and the broker, counted rather than assumed.
# A backend reports its counts within a second of its last transaction, or after ten idle
# seconds: read them after a pause.
db_counts() {
    local commits=0 published=0 consumed=0 db
    for db in orders_bench inventory_bench payments_bench; do
        read -r c p r < <(psql "$pg/$db?$pg_params" -X -A -t -F ' ' -c "SELECT
            (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
            (SELECT count(*) FROM outbox_messages), (SELECT count(*) FROM processed_messages)")
        commits=$((commits + c)) published=$((published + p)) consumed=$((consumed + r))
    done
    echo "$commits $published $consumed"
}
# Statements per order by database and statement, when PostgreSQL loads pg_stat_statements
# (shared_preload_libraries): reset before a run, read after it; silent otherwise.
statements_available() {
    [[ $(psql "$pg/postgres?$pg_params" -X -A -t -c "SHOW shared_preload_libraries") == *pg_stat_statements* ]] &&
        psql "$pg/postgres?$pg_params" -X -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" 2>/dev/null
}
statements_reset() { statements_available && psql "$pg/postgres?$pg_params" -X -q -A -t -c "SELECT pg_stat_statements_reset()" >/dev/null; }
statements_per_order() { # statements_per_order <orders> <file for the busiest statements>
    statements_available || return 0
    psql "$pg/postgres?$pg_params" -X -A -t -F ' | ' -c "
        SELECT d.datname, round(sum(s.calls) / $1, 2), round((sum(s.total_exec_time) / $1)::numeric, 3)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname LIKE '%_bench' GROUP BY d.datname ORDER BY 1" |
        awk '{ print "  statements per order in " $0 " ms executing" }'
    psql "$pg/postgres?$pg_params" -X -A -t -F ' | ' -c "
        SELECT d.datname, round(s.calls::numeric / $1, 2), round((s.total_exec_time / $1)::numeric, 3),
               left(regexp_replace(s.query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname LIKE '%_bench' ORDER BY s.calls DESC LIMIT 40" >"$2"
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
    read -r commits_before published_before consumed_before < <(sleep 11; db_counts)
    statements_reset || true
    cpu_ticks >"$out/$name.cpu-before"
    read -r kernel_before all_before < <(kernel_ticks)
    loadgen "$@" --json "$out/$name.json" --svg "$out/$name.svg" | tee "$out/$name.txt"
    read -r kernel_after all_after < <(kernel_ticks)
    cpu_ticks >"$out/$name.cpu-after"
    read -r commits_after published_after consumed_after < <(sleep 11; db_counts)
    local orders
    orders=$(json "$out/$name.json" "d['counts']['created']")
    {
        echo "CPU per order, $name ($orders orders):"
        cpu_profile "$out/$name.cpu-before" "$out/$name.cpu-after" "$orders"
        echo "  kernel (system + irq + softirq) share of all CPU time: $(( (kernel_after - kernel_before) * 100 / (all_after - all_before) )) %"
        statements_per_order "$orders" "$out/$name.statements.txt"
        python3 -c "print(f'  per order: {($commits_after - $commits_before) / $orders:.2f} transactions committed, {($published_after - $published_before) / $orders:.2f} messages published, {($consumed_after - $consumed_before) / $orders:.2f} consumed by a service with a database')"
    } | tee "$out/$name.profile.txt"
    echo "$((commits_after - commits_before)) $((published_after - published_before)) $((consumed_after - consumed_before)) $orders" >"$out/$name.counts"
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
profiled open-100 --rate 100 --duration "$seconds"
sleep 5

if ((soak_minutes > 0)); then
    rate=$(python3 -c "print(max(1, int($saturation * 50 / 100)))")
    say "soak: $soak_minutes min at 50 % of saturation ($rate orders/s), mix 80/10/10, per minute"
    # The machine's CPU counters once a second, for the per-minute idle and steal shares.
    (while sleep 1; do echo "$(date +%s.%N) $(head -1 /proc/stat)"; done >"$out/soak.proc-stat") &
    sampler=$!
    profiled soak --rate "$rate" --duration "$((soak_minutes * 60))" --window-secs 60
    kill "$sampler"
fi

say "PostgreSQL limit: one saga step per transaction (pgbench, 8 clients, 20 s)"
psql "$pg/postgres" -X -q -c "CREATE DATABASE pgbench_saga"
psql "$pg/pgbench_saga" -X -q -f scripts/bench/saga-step-setup.sql
cpu_ticks >"$out/pgbench.cpu-before"
pgbench -n -c 8 -j 2 -T 20 -f scripts/bench/saga-step.sql "$pg/pgbench_saga?$pg_params" | tee "$out/pgbench.txt"
cpu_ticks >"$out/pgbench.cpu-after"
# PostgreSQL's own CPU per saga-step transaction (pgbench's client processes are not counted).
pgbench_transactions=$(awk '/number of transactions actually processed/ { print $NF }' "$out/pgbench.txt")
join "$out/pgbench.cpu-before" "$out/pgbench.cpu-after" | awk -v n="$pgbench_transactions" -v hz="$(getconf CLK_TCK)" \
    '$1 == "postgres" { printf "%.3f\n", ($3 - $2) * 1000 / hz / n }' >"$out/pgbench.ms-per-transaction"
psql "$pg/postgres" -X -q -c "DROP DATABASE pgbench_saga WITH (FORCE)"

say "RabbitMQ limits (lapin)"
if [[ ${BENCH_PEER:-1} == 0 ]]; then
    RELAY_BENCH_ONLY_RAW=1 cargo bench -q -p outbox --bench relay 2>/dev/null | grep '^|' | tee "$out/rabbitmq.txt"
else
    say "the outbox relay and RabbitMQ's limits (cargo bench -p outbox --bench relay)"
    cargo bench -q -p outbox --bench relay 2>/dev/null | grep '^|' | tee "$out/relay.txt"
    grep RabbitMQ "$out/relay.txt" >"$out/rabbitmq.txt"
    say "the relay's peer: hexeract 0.6 (scripts/bench-peer.sh)"
    scripts/bench-peer.sh 2>"$out/peer.log" | tee "$out/peer.txt"
fi

say "summary"
echo "saturation (closed loop, $clients clients waiting for their orders): $saturation completed orders/s"
cat "$out/saturation.profile.txt" "$out/open-100.profile.txt"
for run in saturation open-50 open-80 open-100 soak; do
    [[ -f $out/$run.json ]] || continue
    json "$out/$run.json" "'$run: ' + str(d['throughput']) + ' | POST ms ' + str(d['post_latency_ms']) + ' | to terminal ms ' + str(d['terminal_latency_ms'])"
done
json "$out/open-100.json" "'resident memory at 100 orders/s (peak MiB): ' + ', '.join(f\"{m['name']} {m['peak_bytes'] / 2**20:.0f}\" for m in d['memory'])"
pgbench_rate=$(awk '/^tps/ { print int($3) }' "$out/pgbench.txt")
python3 -c "print(f'ratio completed orders/s / pgbench saga step: {$saturation} / {$pgbench_rate} = {$saturation / $pgbench_rate:.3f} (issue 15: >= 0.128)')"
# The floor: what the work an order needs costs PostgreSQL and RabbitMQ, from this run's own
# counts (transactions, messages) and unit costs (pgbench, the raw broker rates).
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
commits, published, consumed, orders = map(int, open(f"{out}/saturation.counts").read().split())
pg_ms = float(open(f"{out}/pgbench.ms-per-transaction").read())
rates = {}
for line in open(f"{out}/rabbitmq.txt"):
    match = re.match(r"\| RabbitMQ raw: (.*?) \| ([0-9]+) msg/s \|", line)
    if match:
        rates[match.group(1)] = int(match.group(2))
publish = 2000 / next(rate for name, rate in rates.items() if "window 256" in name)
consume = 2000 / next(rate for name, rate in rates.items() if name.startswith("consume"))
per = lambda n: n / orders
database = per(commits) * pg_ms
broker = per(published) * publish + per(consumed) * consume
print(f"floor per order at saturation: PostgreSQL {per(commits):.2f} transactions x {pg_ms:.3f} ms (its CPU per pgbench saga step) = {database:.2f} ms; "
      f"RabbitMQ {per(published):.2f} publishes x {publish:.3f} ms + {per(consumed):.2f} deliveries x {consume:.3f} ms (machine time at its raw rates) = {broker:.2f} ms; "
      f"together {database + broker:.2f} ms, {2000 / (database + broker):.0f} orders/s on two cores before the services' own CPU")
PY
if [[ -f $out/soak.json ]]; then
    echo "soak, per minute (orders sent in the minute; POST -> terminal; resident memory at its end, MiB; the machine's idle and stolen CPU):"
    python3 - "$out/soak.json" "$out/soak.proc-stat" <<'PY'
import datetime, json, sys
d = json.load(open(sys.argv[1]))
# (time, idle ticks, steal ticks, all ticks) from /proc/stat's first line, once a second.
samples = []
for line in open(sys.argv[2]):
    fields = line.split()
    ticks = [int(v) for v in fields[2:10]]  # user nice system idle iowait irq softirq steal
    samples.append((float(fields[0]), ticks[3] + ticks[4], ticks[7], sum(ticks)))
started = datetime.datetime.fromisoformat(d["started_at"].replace("Z", "+00:00")).timestamp()
def shares(start, end):
    inside = [s for s in samples if started + start <= s[0] <= started + end]
    if len(inside) < 2 or inside[-1][3] == inside[0][3]:
        return "-", "-"
    first, last = inside[0], inside[-1]
    total = last[3] - first[3]
    return f"{(last[1] - first[1]) * 100 / total:.0f}", f"{(last[2] - first[2]) * 100 / total:.0f}"
names = sorted({name for w in d["windows"] for name in w["rss_bytes"]})
print("| minute | sent | completed | cancelled | p50 ms | p99 ms | " + " | ".join(names) + " | idle % | steal % |")
print("|---:" * (8 + len(names)) + "|")
# The windows of the schedule: the settle time after it sends nothing.
for i, w in enumerate((w for w in d["windows"] if w["sent"] > 0), 1):
    ms = lambda v: "-" if v is None else f"{v:.0f}"
    rss = [f"{w['rss_bytes'][n] / 2**20:.0f}" if n in w["rss_bytes"] else "-" for n in names]
    idle, steal = shares(w["start_secs"], w["end_secs"])
    print(f"| {i} | {w['sent']} | {w['completed']} | {w['cancelled']} | {ms(w['terminal_p50_ms'])} | {ms(w['terminal_p99_ms'])} | " + " | ".join(rss) + f" | {idle} | {steal} |")
PY
fi
if [[ -f $out/peer.txt ]]; then
    echo "the relay beside its peer (msg/s; ours / theirs):"
    python3 - "$out/relay.txt" "$out/peer.txt" <<'PY'
import re, sys
def rows(path):
    for line in open(path):
        match = re.match(r"\| (.*?) \| ([0-9]+) msg/s \|", line)
        if match:
            yield match.group(1), int(match.group(2))
ours = next(rate for name, rate in rows(sys.argv[1]) if name.startswith("Relay:"))
print(f"  saga-rs outbox relay: {ours}")
for name, rate in rows(sys.argv[2]):
    print(f"  {name.split(':')[0]}: {rate} (ours / theirs = {ours / rate:.1f})")
PY
fi
