#!/usr/bin/env bash
# Runs the whole order system without Docker, against a local PostgreSQL and RabbitMQ.
#
#   scripts/run-local.sh [start] [--debug]   provision, build, start the four services, wait
#   scripts/run-local.sh stop                SIGTERM them and wait until they have exited
#   scripts/run-local.sh status              show which are running and ready
#
# `start` provisions least privilege as compose does: each service connects to PostgreSQL as
# its own non-superuser role (order_svc, inventory_svc, payment_svc, password `dev-<role>`),
# which owns its database, and to RabbitMQ as its own user (order-svc, ...), which
# `sagactl broker provision` creates with its permissions and the whole topology. It needs
# psql, curl and rabbitmqctl (the broker must run on this machine).
#
# Environment (defaults in brackets):
#   PG_URL_BASE        [postgres://postgres@127.0.0.1:5432]  server URL of a superuser, without
#                      a database; the roles and the databases orders, inventory and payments
#                      are created if missing (the services never use this user)
#   DATABASE_SUFFIX    [] appended to the database names (the benchmark uses its own databases)
#   DATABASE_URL_PARAMS [sslmode=disable] query parameters of DATABASE_URL (no TLS on loopback)
#   AMQP_URL           [amqp://guest:guest@127.0.0.1:5672/%2f]  the broker and vhost; each
#                      service connects to them as its own user instead of this URL's
#   BROKER_PASSWORD_ORDER_SVC, _INVENTORY_SVC, _PAYMENT_SVC, _NOTIFY_SVC [dev-<user>]
#                      the service users' passwords (set when they are provisioned)
#   AUTH_JWT_SECRET    [the development secret printed at the end] HS256 secret of the tokens;
#                      AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_ALGORITHM, AUTH_JWT_ISSUER and
#                      AUTH_JWT_AUDIENCE are passed on when set (a key file replaces the secret)
#   RUST_LOG [info], LOG_FORMAT [text], STARTUP_TIMEOUT_SECS [60],
#   ORDER_SAGA_TIMEOUT_SECS [30], ORDER_SAGA_RESEND_AFTER_MS [5000], PAYMENT_DEMO_BALANCE [0], NOTIFY_MAX_NOTIFICATIONS [10000]
#                      passed to the services under the same names as in compose.yaml
#   READY_TIMEOUT_SECS [90]  how long `start` waits for every GET /health/ready to answer 200
#   OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_* variables are inherited: set, the
#                      services export their traces there over OTLP/HTTP
#
# The service users keep their default names (AMQP_PRODUCER_USERS is not passed on).
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
# Each stateful service's own PostgreSQL role, owner of its database (one role per service, for
# every DATABASE_SUFFIX).
declare -A role=([order-svc]=order_svc [inventory-svc]=inventory_svc [payment-svc]=payment_svc)
# The published development secret compose.yaml uses too: tokens minted for one work for both.
development_jwt_secret=dev-jwt-secret-for-local-runs-only-replace-me

pg_url_base=${PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}
pg_url_base=${pg_url_base%/}
amqp_url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
# AMQP_URL taken apart: scheme, host:port, and the path that names the vhost ("/%2f", ...).
amqp_scheme=${amqp_url%%://*}
amqp_address=${amqp_url#*://}
amqp_address=${amqp_address##*@}
amqp_path=${amqp_address#"${amqp_address%%/*}"}
amqp_address=${amqp_address%%/*}
amqp_vhost=${amqp_path#/}
amqp_vhost=${amqp_vhost%%\?*}
# Percent-decoded; an empty path is the default vhost.
amqp_vhost=$(printf '%b' "${amqp_vhost//%/\\x}")
amqp_vhost=${amqp_vhost:-/}
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

# The password of a service's broker user: BROKER_PASSWORD_<SERVICE>, or the development one.
broker_password() {
    local svc=$1 variable
    variable=BROKER_PASSWORD_${svc^^}
    variable=${variable//-/_}
    printf '%s' "${!variable:-dev-$svc}"
}

# PG_URL_BASE with its user (and password) replaced by `$1`:`$2`.
pg_url_as() {
    local scheme=${pg_url_base%%://*} address=${pg_url_base#*://}
    printf '%s://%s:%s@%s' "$scheme" "$1" "$2" "${address##*@}"
}

# For each stateful service: its role (LOGIN, no superuser, no CREATEDB or CREATEROLE), its
# database owned by that role, and every table, view and sequence in it owned by that role too
# (databases of runs from before the roles existed belong to the superuser).
create_databases() {
    local svc db
    command -v psql >/dev/null || die "psql is not installed"
    psql "$pg_url_base/postgres" -X -q -v ON_ERROR_STOP=1 -tA -c 'SELECT 1' >/dev/null ||
        die "cannot connect to PostgreSQL at $pg_url_base (is it running? set PG_URL_BASE)"
    for svc in "${services[@]}"; do
        db=${database[$svc]:-}
        [[ -n $db ]] || continue
        psql "$pg_url_base/postgres" -X -q -v ON_ERROR_STOP=1 \
            -v role="${role[$svc]}" -v password="dev-${role[$svc]}" -v database="$db" <<'SQL' ||
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS role_missing \gset
\if :role_missing
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
\endif
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') AS database_missing \gset
\if :database_missing
CREATE DATABASE :"database" OWNER :"role";
\endif
ALTER DATABASE :"database" OWNER TO :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
\connect :"database"
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
              n.nspname, c.relname, :'role')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND pg_get_userbyid(c.relowner) <> :'role'
  -- A column's sequence follows its table.
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
\gexec
SQL
            die "cannot create role ${role[$svc]} or database $db"
        say "database $db: owned by role ${role[$svc]}"
    done
}

# The broker's users, permissions and topology for the vhost of AMQP_URL (created if missing).
provision_broker() {
    local sagactl=$1 svc variable
    local -a passwords=()
    for svc in "${services[@]}"; do
        variable=BROKER_PASSWORD_${svc^^}
        passwords+=("${variable//-/_}=$(broker_password "$svc")")
    done
    env -u AMQP_PRODUCER_USERS "${passwords[@]}" \
        "$sagactl" broker provision --vhost "$amqp_vhost" --no-administrator ||
        die "cannot provision vhost $amqp_vhost of the local RabbitMQ (is it running?)"
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
        "AMQP_URL=$amqp_scheme://$svc:$(broker_password "$svc")@$amqp_address$amqp_path"
        "HTTP_ADDR=127.0.0.1:${port[$svc]}"
        "STARTUP_TIMEOUT_SECS=${STARTUP_TIMEOUT_SECS:-60}"
        "DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-10}"
        "RUST_LOG=${RUST_LOG:-info}"
        "LOG_FORMAT=${LOG_FORMAT:-text}"
    )
    if [[ -n ${database[$svc]:-} ]]; then
        environment+=("DATABASE_URL=$(pg_url_as "${role[$svc]}" "dev-${role[$svc]}")/${database[$svc]}${url_params:+?$url_params}")
    fi
    if [[ -n ${AUTH_JWT_PUBLIC_KEY_FILE:-} ]]; then
        environment+=("AUTH_JWT_PUBLIC_KEY_FILE=$AUTH_JWT_PUBLIC_KEY_FILE" "AUTH_JWT_ALGORITHM=${AUTH_JWT_ALGORITHM:-}")
    else
        environment+=("AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-$development_jwt_secret}")
    fi
    environment+=("AUTH_JWT_ISSUER=${AUTH_JWT_ISSUER:-}" "AUTH_JWT_AUDIENCE=${AUTH_JWT_AUDIENCE:-}")
    case $svc in
    order-svc) environment+=("ORDER_SAGA_TIMEOUT_SECS=${ORDER_SAGA_TIMEOUT_SECS:-30}" "ORDER_SAGA_RESEND_AFTER_MS=${ORDER_SAGA_RESEND_AFTER_MS:-5000}") ;;
    payment-svc) environment+=("PAYMENT_DEMO_BALANCE=${PAYMENT_DEMO_BALANCE:-0}") ;;
    notify-svc) environment+=("NOTIFY_MAX_NOTIFICATIONS=${NOTIFY_MAX_NOTIFICATIONS:-10000}") ;;
    esac
    printf '\n==> %s started at %s\n' "$svc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
    # Not inherited from this shell: the users provisioned have the default names, and a
    # service given both a secret and a key file refuses to start.
    nohup env -u AMQP_PRODUCER_USERS -u AUTH_JWT_SECRET -u AUTH_JWT_PUBLIC_KEY_FILE \
        "${environment[@]}" "$bin" >>"$log" 2>&1 </dev/null &
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
    command -v rabbitmqctl >/dev/null ||
        die "rabbitmqctl is not installed (RabbitMQ must run on this machine)"

    for svc in "${services[@]}"; do
        pid=$(running_pid "$svc")
        [[ -z $pid ]] || die "$svc is already running (pid $pid); run '$0 stop' first"
    done
    mkdir -p "$run_dir"

    create_databases

    say "building (${profile_dir})"
    (cd "$root" && cargo build "${profile_flag[@]}" -p order-svc -p inventory-svc -p payment-svc -p notify-svc -p sagactl) ||
        die "cargo build failed"
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    [[ $target_dir == /* ]] || target_dir="$root/$target_dir"
    for svc in "${services[@]}" sagactl; do
        [[ -x "$target_dir/$profile_dir/$svc" ]] || die "no binary at $target_dir/$profile_dir/$svc"
    done

    provision_broker "$target_dir/$profile_dir/sagactl"

    for svc in "${services[@]}"; do
        start_one "$svc" "$target_dir/$profile_dir/$svc"
    done
    say "waiting up to ${ready_timeout}s for GET /health/ready"
    wait_ready

    say ""
    status
    local secret_hint
    if [[ -n ${AUTH_JWT_PUBLIC_KEY_FILE:-} ]]; then
        secret_hint="# The services verify tokens with $AUTH_JWT_PUBLIC_KEY_FILE: get them from its identity provider."
    elif [[ -n ${AUTH_JWT_SECRET:-} ]]; then
        secret_hint="# AUTH_JWT_SECRET is set in this shell: sagactl signs with it."
    else
        secret_hint="export AUTH_JWT_SECRET=$development_jwt_secret   # the development secret"
    fi
    cat <<EOF

All four services are ready. Each serves /health/live, /health/ready, /metrics and /openapi.json;
everything else needs a bearer token. Mint development tokens with sagactl:

  $secret_hint
  OPERATOR=\$(cargo run -q -p sagactl -- token --operator)
  CUSTOMER=0190c0de-0000-7000-8000-000000000001
  CUSTOMER_TOKEN=\$(cargo run -q -p sagactl -- token --customer \$CUSTOMER --lifetime 30m)

  curl -X PUT http://127.0.0.1:8081/products/widget -H "authorization: Bearer \$OPERATOR" \\
       -H 'content-type: application/json' -d '{"available": 10, "price": 1250}'
  curl -X PUT http://127.0.0.1:8082/accounts/\$CUSTOMER -H "authorization: Bearer \$OPERATOR" \\
       -H 'content-type: application/json' -d '{"balance": 5000}'
  curl -i -X POST http://127.0.0.1:8080/orders -H "authorization: Bearer \$CUSTOMER_TOKEN" \\
       -H 'content-type: application/json' -d '{"items": [{"product_id": "widget", "quantity": 2}]}'
  curl -H "authorization: Bearer \$CUSTOMER_TOKEN" http://127.0.0.1:8080/orders/<id from the Location header>
  curl -H "authorization: Bearer \$CUSTOMER_TOKEN" "http://127.0.0.1:8083/notifications?order_id=<id>"

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
