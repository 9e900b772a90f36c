#!/usr/bin/env bash
# Makes this machine run the PostgreSQL and RabbitMQ that `cargo test --workspace` expects, from
# Debian's packages (Debian or Ubuntu, without Docker), and installs the Chromium and
# ChromeDriver the console's browser test drives:
#   - PostgreSQL on 127.0.0.1:5432, where the user postgres (a superuser) connects over TCP
#     without a password;
#   - RabbitMQ on 127.0.0.1:5672 with the user guest/guest, and rabbitmqctl.
# Each step runs only when needed, so a second run only checks:
#   1. installs the packages postgresql, rabbitmq-server, chromium and chromium-driver with
#      apt-get;
#   2. starts the PostgreSQL cluster of port 5432 (pg_ctlcluster) and waits until it accepts
#      connections on 127.0.0.1;
#   3. if postgres cannot connect over loopback TCP without a password, puts trust rules for it
#      at the top of that cluster's pg_hba.conf (the original is kept beside it, with the suffix
#      .before-dev-servers) and reloads the cluster;
#   4. starts RabbitMQ (rabbitmq-server -detached) and waits until it has booted;
# then it checks that both servers answer on 127.0.0.1 and let the tests' users in.
# It prints what it did; when a server cannot be made ready it says why and exits non-zero.
# Commands that need root run with sudo when this is not root.
#
#   DEV_SERVERS_WAIT_SECS [90]  how long to wait for each server to come up
#
# With Docker instead: deploy/test-servers/compose.yaml. .ci/run runs this script.
set -euo pipefail
# rabbitmq-server and rabbitmqctl are in /usr/sbin, which a user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
# shellcheck source-path=SCRIPTDIR source=lib/apt.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

wait_secs=${DEV_SERVERS_WAIT_SECS:-90}
pg_port=5432
amqp_port=5672
done_steps=()

say() { printf 'dev-servers: %s\n' "$*"; }
die() {
    printf 'dev-servers: ERROR: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when root, else with sudo.
as_root() {
    if ((EUID == 0)); then
        "$@"
    else
        command -v sudo >/dev/null || die "'$*' needs root, and there is no sudo"
        sudo "$@"
    fi
}

# Runs a command once a second until it succeeds, for at most $wait_secs seconds.
wait_until() {
    local deadline=$((SECONDS + wait_secs))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# --- 1. packages --------------------------------------------------------------------------------
missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
# The console's browser test drives Debian's headless Chromium through its ChromeDriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]} > 0)); then
    command -v apt-get >/dev/null ||
        die "${missing[*]} not installed, and there is no apt-get: this script is for Debian and" \
            "Ubuntu; elsewhere install them yourself or use Docker (deploy/test-servers/compose.yaml)"
    say "installing ${missing[*]} with apt-get"
    apt_install "${missing[@]}" || die "cannot install ${missing[*]} with apt-get (as root or with sudo)"
    done_steps+=("installed ${missing[*]}")
fi

# --- 2. PostgreSQL running ----------------------------------------------------------------------
# The cluster of port 5432: version, name, status and log file.
read -r pg_version pg_cluster pg_status pg_log < <(
    pg_lsclusters --no-header | awk -v port="$pg_port" '$3 == port { print $1, $2, $4, $7; exit }'
) || die "no PostgreSQL cluster uses port $pg_port (pg_lsclusters); create one:" \
    "pg_createcluster --start --port $pg_port <version> main"
pg="PostgreSQL $pg_version/$pg_cluster"

pg_ready() { pg_isready -h 127.0.0.1 -p "$pg_port" -q; }
if ! pg_ready; then
    if [[ $pg_status != online* ]]; then
        say "$pg is $pg_status: starting it"
        as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" start ||
            die "cannot start $pg (see $pg_log)"
        done_steps+=("started $pg")
    fi
    wait_until pg_ready ||
        die "$pg accepts no connections on 127.0.0.1:$pg_port after ${wait_secs}s" \
            "(is 127.0.0.1 in its listen_addresses? see $pg_log)"
fi
say "$pg accepts connections on 127.0.0.1:$pg_port"

# --- 3. postgres trusted over loopback TCP ------------------------------------------------------
# Connects as the tests do, and never with a password from the environment or ~/.pgpass; prints
# "t" if postgres is a superuser, or psql's error.
pg_login() {
    env -u PGPASSWORD -u PGSERVICE PGPASSFILE=/nonexistent/.pgpass psql -wXqtA \
        "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres sslmode=disable connect_timeout=5" \
        -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' 2>&1
}
if ! login=$(pg_login); then
    hba=/etc/postgresql/$pg_version/$pg_cluster/pg_hba.conf
    as_root test -f "$hba" || die "postgres cannot connect without a password ($login), and there is no $hba"
    marker='# saga-rs (scripts/dev-servers.sh): the tests connect as postgres over loopback TCP, without a password.'
    if ! as_root grep -qxF -- "$marker" "$hba"; then
        say "postgres needs a password over TCP ($login): trusting it on loopback in $hba"
        rules="$marker\nhost    all             postgres        127.0.0.1/32            trust"
        rules+="\nhost    all             postgres        ::1/128                 trust"
        as_root cp -p "$hba" "$hba.before-dev-servers"
        # pg_hba.conf's first matching line decides: the rules go before every other one (and
        # before the comments right above that one, which belong to it).
        # shellcheck disable=SC2016 # an awk program: its $0 is awk's
        as_root awk -v rules="$rules" '
            added { print; next }
            /^[[:space:]]*#/ { comments = comments $0 "\n"; next }
            /^[[:space:]]*$/ { printf "%s", comments; comments = ""; print; next }
            { print rules "\n"; printf "%s", comments; print; added = 1 }
            END { if (!added) { printf "%s", comments; print rules } }' \
            "$hba.before-dev-servers" | as_root tee "$hba" >/dev/null
        done_steps+=("trusted postgres on loopback in $hba")
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" reload ||
        die "cannot reload $pg (see $pg_log)"
    done_steps+=("reloaded $pg")
    # A reload takes effect a moment after pg_ctlcluster returns.
    trusted=0
    for _ in $(seq 10); do
        if login=$(pg_login); then
            trusted=1
            break
        fi
        sleep 0.5
    done
    ((trusted)) ||
        die "postgres still cannot connect to 127.0.0.1:$pg_port without a password: $login (see $hba)"
fi
[[ $login == t ]] || die "postgres connects to 127.0.0.1:$pg_port but is not a superuser: $login"
say "postgres connects over loopback TCP without a password, as a superuser"

# --- 4. RabbitMQ running ------------------------------------------------------------------------
rabbit_node_runs() { as_root rabbitmqctl -q ping >/dev/null 2>&1; }
rabbit_booted() { as_root timeout 15 rabbitmqctl -q await_startup >/dev/null 2>&1; }
if ! rabbit_node_runs; then
    say "RabbitMQ is not running: starting it (rabbitmq-server -detached)"
    as_root rabbitmq-server -detached || die "cannot start RabbitMQ (see /var/log/rabbitmq/)"
    done_steps+=("started RabbitMQ")
fi
wait_until rabbit_booted ||
    die "RabbitMQ has not booted after ${wait_secs}s (rabbitmqctl -q await_startup; see /var/log/rabbitmq/)"
(: <"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null ||
    die "RabbitMQ runs but accepts no connections on 127.0.0.1:$amqp_port (see /etc/rabbitmq/)"
as_root rabbitmqctl -q authenticate_user guest guest >/dev/null 2>&1 ||
    die "RabbitMQ runs but guest/guest cannot log in; the tests need it:" \
        "rabbitmqctl add_user guest guest && rabbitmqctl set_user_tags guest administrator"
say "RabbitMQ accepts connections on 127.0.0.1:$amqp_port, and guest/guest"

if ((${#done_steps[@]} == 0)); then
    say "both servers were ready: nothing to do"
else
    say "done: $(printf '%s; ' "${done_steps[@]}" | sed 's/; $//')"
fi
