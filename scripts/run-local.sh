#!/usr/bin/env bash
# Runs the whole order system without Docker, against a local PostgreSQL and RabbitMQ.
#
#   scripts/run-local.sh [start] [--debug]   build, start the four services, wait until ready
#   scripts/run-local.sh stop                SIGTERM them and wait until they have exited
#   scripts/run-local.sh status              show which are running and ready
#
# Environment (defaults in brackets):
#   PG_URL_BASE        [postgres://postgres@127.0.0.1:5432]  server URL without a database;
#                      the databases orders, inventory and payments are created if missing
#   DATABASE_SUFFIX    [] appended to the database names (the benchmark uses its own databases)
#   DATABASE_URL_PARAMS [sslmode=disable] query parameters of DATABASE_URL (no TLS on loopback)
#   AMQP_URL           [amqp://guest:guest@127.0.0.1:5672/%2f]
#   RUST_LOG [info], LOG_FORMAT [text], STARTUP_TIMEOUT_SECS [60],
#   ORDER_SAGA_TIMEOUT_SECS [30], PAYMENT_DEFAULT_BALANCE [100000], NOTIFY_MAX_NOTIFICATIONS [10000]
#                      passed to the services under the same names as in compose.yaml
#   READY_TIMEOUT_SECS [90]  how long `start` waits for every GET /health/ready to answer 200
#
# Logs go to target/run-local/<svc>.log, process ids to target/run-local/<svc>.pid.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir="$root/target/run-local"

services=(order-svc inventory-svc payment-svc notify-svc)
declare -A port=([order-svc]=8080 [inventory-svc]=8081 [payment-svc]=8082 [notify-svc]=8083)
suffix=${DATABASE_SUFFIX:-}
# TLS to a server on loopback costs CPU and protects nothing.
url_params=${DATABASE_URL_PARAMS-sslmode=disable}
declare -A database=([order-svc]="orders$suffix" [inventory-svc]="inventory$suffix" [payment-svc]="payments$suffix")

pg_url_base=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
pg_url_base=${pg_url_base%/}
amqp_url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
ready_timeout=${READY_TIMEOUT_SECS:-90}

say() { printf '%s\n' "$*"; }
die() {
    printf 'run-local: %s\n' "$*" >&2
    exit 1
}

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

pid_file() { printf '%s/%s.pid' "$run_dir" "$1"; }
log_file() { printf '%s/%s.log' "$run_dir" "$1"; }

# The pid recorded for a service if that process is alive and is that service's binary (so a
# recycled pid is never signalled; nohup and env exec it, so they count for an instant after
# start); empty otherwise.
running_pid() {
    local svc=$1 file pid
    file=$(pid_file "$svc")
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    case $(ps -p "$pid" -o comm= 2>/dev/null) in
    "$svc" | nohup | env) printf '%s' "$pid" ;;
    esac
}

# The pid recorded for a service if that process is alive, whatever it runs yet (right after
# start it may still be the shell that forked it); empty otherwise.
started_pid() {
    local file pid
    file=$(pid_file "$1")
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
    return 0
}

ready() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${port[$1]}/health/ready" 2>/dev/null
}

create_databases() {
    local db exists
    command -v psql >/dev/null || die "psql is not installed"
    for db in "orders$suffix" "inventory$suffix" "payments$suffix"; do
        exists=$(psql "$pg_url_base/postgres" -X -q -v ON_ERROR_STOP=1 -tA \
            -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ||
            die "cannot query PostgreSQL at $pg_url_base (is it running? set PG_URL_BASE)"
        if [[ $exists == 1 ]]; then
            say "database $db: exists"
        else
            psql "$pg_url_base/postgres" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" ||
                die "cannot create database $db"
            say "database $db: created"
        fi
    done
}

stop_all() {
    local svc pid pids=() deadline
    for svc in "${services[@]}"; do
        pid=$(running_pid "$svc")
        if [[ -n $pid ]]; then
            say "stopping $svc (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + 30))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid did not exit within 30s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for svc in "${services[@]}"; do
        rm -f "$(pid_file "$svc")"
    done
    if ((${#pids[@]} > 0)); then
        say "stopped"
    else
        say "nothing was running"
    fi
}

status() {
    local svc pid state
    for svc in "${services[@]}"; do
        pid=$(running_pid "$svc")
        if [[ -z $pid ]]; then
            state="not running"
        elif ready "$svc"; then
            state="ready (pid $pid)"
        else
            state="running, not ready (pid $pid)"
        fi
        printf '%-14s http://127.0.0.1:%s  %s\n' "$svc" "${port[$svc]}" "$state"
    done
}

start_one() {
    local svc=$1 bin=$2 log
    log=$(log_file "$svc")
    local -a environment=(
        "AMQP_URL=$amqp_url"
        "HTTP_ADDR=127.0.0.1:${port[$svc]}"
        "STARTUP_TIMEOUT_SECS=${STARTUP_TIMEOUT_SECS:-60}"
        "DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-10}"
        "RUST_LOG=${RUST_LOG:-info}"
        "LOG_FORMAT=${LOG_FORMAT:-text}"
    )
    if [[ -n ${database[$svc]:-} ]]; then
        environment+=("DATABASE_URL=$pg_url_base/${database[$svc]}${url_params:+?$url_params}")
    fi
    case $svc in
    order-svc) environment+=("ORDER_SAGA_TIMEOUT_SECS=${ORDER_SAGA_TIMEOUT_SECS:-30}") ;;
    payment-svc) environment+=("PAYMENT_DEFAULT_BALANCE=${PAYMENT_DEFAULT_BALANCE:-100000}") ;;
    notify-svc) environment+=("NOTIFY_MAX_NOTIFICATIONS=${NOTIFY_MAX_NOTIFICATIONS:-10000}") ;;
    esac
    printf '\n==> %s started at %s\n' "$svc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
    nohup env "${environment[@]}" "$bin" >>"$log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$(pid_file "$svc")"
    say "started $svc (pid $!), log $log"
}

# Waits until every service answers GET /health/ready with 200. On a timeout or a service that
# exits, shows the end of its log, stops the others and fails.
wait_ready() {
    local svc pid deadline=$((SECONDS + ready_timeout)) pending
    while :; do
        pending=()
        for svc in "${services[@]}"; do
            pid=$(started_pid "$svc")
            if [[ -z $pid ]]; then
                say "$svc exited during start-up; end of $(log_file "$svc"):" >&2
                tail -n 20 "$(log_file "$svc")" >&2 || true
                stop_all
                die "$svc did not start (PostgreSQL at $pg_url_base, RabbitMQ at $amqp_url)"
            fi
            ready "$svc" || pending+=("$svc")
        done
        ((${#pending[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            for svc in "${pending[@]}"; do
                say "$svc not ready after ${ready_timeout}s; end of $(log_file "$svc"):" >&2
                tail -n 20 "$(log_file "$svc")" >&2 || true
            done
            stop_all
            die "not ready within ${ready_timeout}s: ${pending[*]} (set READY_TIMEOUT_SECS to wait longer)"
        fi
        sleep 1
    done
}

start() {
    local profile_flag=(--release) profile_dir=release svc pid target_dir
    while (($# > 0)); do
        case $1 in
        --debug) profile_flag=() profile_dir=debug ;;
        --release) profile_flag=(--release) profile_dir=release ;;
        *) die "unknown option: $1 (see --help)" ;;
        esac
        shift
    done
    [[ $ready_timeout =~ ^[0-9]+$ ]] || die "READY_TIMEOUT_SECS must be a number of seconds"
    command -v curl >/dev/null || die "curl is not installed"

    for svc in "${services[@]}"; do
        pid=$(running_pid "$svc")
        [[ -z $pid ]] || die "$svc is already running (pid $pid); run '$0 stop' first"
    done
    mkdir -p "$run_dir"

    create_databases

    say "building (${profile_dir})"
    (cd "$root" && cargo build "${profile_flag[@]}" -p order-svc -p inventory-svc -p payment-svc -p notify-svc) ||
        die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    [[ $target_dir == /* ]] || target_dir="$root/$target_dir"
    for svc in "${services[@]}"; do
        [[ -x "$target_dir/$profile_dir/$svc" ]] || die "no binary at $target_dir/$profile_dir/$svc"
    done

    for svc in "${services[@]}"; do
        start_one "$svc" "$target_dir/$profile_dir/$svc"
    done
    say "waiting up to ${ready_timeout}s for GET /health/ready"
    wait_ready

    say ""
    status
    cat <<EOF

All four services are ready. Each serves /health/live, /health/ready, /metrics and /openapi.json.

  curl -X PUT http://127.0.0.1:8081/products/widget -H 'content-type: application/json' -d '{"available": 10}'
  curl -i -X POST http://127.0.0.1:8080/orders -H 'content-type: application/json' \\
       -d '{"customer_id": "0190c0de-0000-7000-8000-000000000001", "items": [{"product_id": "widget", "quantity": 2, "unit_price": 1250}]}'
  curl http://127.0.0.1:8080/orders/<id from the Location header>
  curl "http://127.0.0.1:8083/notifications?order_id=<id>"

Logs: $run_dir/<svc>.log    Stop: $0 stop
EOF
}

command=${1:-start}
case $command in
start)
    shift || true
    start "$@"
    ;;
--debug | --release) start "$@" ;;
stop)
    (($# == 1)) || die "stop takes no options"
    stop_all
    ;;
status)
    (($# == 1)) || die "status takes no options"
    status
    ;;
-h | --help | help) usage ;;
*) die "unknown command: $command (see --help)" ;;
esac
