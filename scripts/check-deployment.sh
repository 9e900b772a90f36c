#!/usr/bin/env bash
# Validates the deployment files without a Docker engine and without building anything:
#   - compose.yaml parses and resolves (`docker-compose config -q`) and defines every service,
#     and so does its optional observability profile with deploy/observability/compose.traces.yaml,
#   - so does deploy/test-servers/compose.yaml (PostgreSQL and RabbitMQ for the tests), which
#     mounts existing files and publishes its ports on 127.0.0.1 only,
#   - each service's Dockerfile builds it with `cargo build --release --locked -p <svc>` and runs
#     it as a non-root user,
#   - .dockerignore keeps target/ out of the build context,
#   - the broker and database provisioning files in deploy/ exist and are well-formed (the
#     RabbitMQ config loads the definitions, the definitions parse as JSON, every file compose
#     mounts exists), and AMQP and the management UI are published on 127.0.0.1 only,
#   - the shell scripts in scripts/ (with scripts/lib/, which they source) and in deploy/ pass
#     the shellcheck linter, and the Dockerfiles hadolint if it is installed.
# Whether deploy/rabbitmq/definitions.json is in sync with contracts is checked by
# `cargo test -p sagactl` (it must equal `sagactl broker definitions --development`).
# Installs docker-compose and shellcheck with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source-path=SCRIPTDIR source=lib/apt.sh disable=SC1091
source scripts/lib/apt.sh

services=(order-svc inventory-svc payment-svc notify-svc console)
infrastructure=(rabbitmq order-db inventory-db payment-db)
failures=0

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf 'check-deployment: FAILED: %s\n' "$*" >&2
    failures=$((failures + 1))
}

step "compose.yaml"
compose=()
if command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "docker-compose is missing; installing it with apt-get"
    apt_install docker-compose || fail "cannot install docker-compose with apt-get"
    command -v docker-compose >/dev/null && compose=(docker-compose)
fi
if ((${#compose[@]} > 0)); then
    version=$("${compose[@]}" version 2>&1 || true)
    printf '%s\n' "${version%%$'\n'*}"
    if [[ ! -f compose.yaml ]]; then
        fail "compose.yaml is missing"
    elif ! errors=$("${compose[@]}" -f compose.yaml config -q 2>&1); then
        printf '%s\n' "$errors" >&2
        fail "compose.yaml is invalid (${compose[*]} -f compose.yaml config -q)"
    else
        [[ -z $errors ]] || printf '%s\n' "$errors"
        defined=$("${compose[@]}" -f compose.yaml config --services)
        for name in "${infrastructure[@]}" "${services[@]}"; do
            grep -qx -- "$name" <<<"$defined" || fail "compose.yaml defines no service $name"
        done
        echo "compose.yaml is valid and defines: $(paste -sd ' ' <<<"$defined")"
        # The optional observability profile, with the override that sends traces to Jaeger.
        observability=(-f compose.yaml -f deploy/observability/compose.traces.yaml --profile observability)
        if ! errors=$("${compose[@]}" "${observability[@]}" config -q 2>&1); then
            printf '%s\n' "$errors" >&2
            fail "the observability profile is invalid (${compose[*]} ${observability[*]} config -q)"
        else
            echo "the observability profile and deploy/observability/compose.traces.yaml are valid"
        fi
    fi
fi

step "deploy/test-servers/compose.yaml"
test_compose=deploy/test-servers/compose.yaml
test_servers=(postgres rabbitmq)
if [[ ! -f $test_compose ]]; then
    fail "$test_compose is missing"
else
    failures_before=$failures
    if ((${#compose[@]} > 0)); then
        if ! errors=$("${compose[@]}" -f "$test_compose" config -q 2>&1); then
            printf '%s\n' "$errors" >&2
            fail "$test_compose is invalid (${compose[*]} -f $test_compose config -q)"
        else
            [[ -z $errors ]] || printf '%s\n' "$errors"
            defined=$("${compose[@]}" -f "$test_compose" config --services)
            for name in "${test_servers[@]}"; do
                grep -qx -- "$name" <<<"$defined" || fail "$test_compose defines no service $name"
            done
        fi
    fi
    # Every file it mounts (relative to its own directory) must exist.
    while read -r mounted; do
        [[ -e ${test_compose%/*}/$mounted ]] || fail "$test_compose mounts $mounted, which does not exist"
    done < <(grep -Eo '^[[:space:]]*-[[:space:]]*"?\./[^:"[:space:]]+' "$test_compose" |
        sed -E 's/^[[:space:]]*-[[:space:]]*"?//' | sort -u)
    # The servers trust everyone: every port it publishes, in any syntax, is on 127.0.0.1, and
    # PostgreSQL and AMQP are published.
    # The lines of every `ports:` list (its items may be indented as far as the key itself).
    ports=$(awk '
        /^[[:space:]]*(#|$)/ { next }
        { indent = match($0, /[^ ]/) - 1 }
        in_ports && (indent < key_indent || (indent == key_indent && !/^[[:space:]]*- /)) {
            in_ports = 0
        }
        in_ports { print; next }
        /^[[:space:]]*ports:/ {
            in_ports = 1
            key_indent = indent
            sub(/^[[:space:]]*ports:[[:space:]]*/, "")
            if ($0 != "") print
        }' "$test_compose")
    for port in 5432 5672; do
        grep -qx "[[:space:]]*- \"127\.0\.0\.1:$port:$port\"" <<<"$ports" ||
            fail "$test_compose does not publish port $port as \"127.0.0.1:$port:$port\""
    done
    while read -r entry; do
        [[ -z $entry || $entry =~ ^-\ \"127\.0\.0\.1:[0-9]+:[0-9]+\"$ ]] ||
            fail "$test_compose publishes a port beyond 127.0.0.1 (or not as \"127.0.0.1:N:N\"): $entry"
    done < <(sed -E 's/^[[:space:]]+//' <<<"$ports")
    ((failures > failures_before)) ||
        echo "$test_compose is valid, defines: ${test_servers[*]}; mounts existing files; ports on 127.0.0.1 only"
fi

step "deploy/: broker and database provisioning"
rabbitmq_conf=deploy/rabbitmq/rabbitmq.conf
definitions=deploy/rabbitmq/definitions.json
init_script=deploy/postgres/service-role.sh
for file in "$rabbitmq_conf" "$definitions" "$init_script"; do
    [[ -f $file ]] || fail "$file is missing"
done
if [[ -f $rabbitmq_conf ]]; then
    grep -Eq '^[[:space:]]*load_definitions[[:space:]]*=[[:space:]]*/etc/rabbitmq/definitions\.json[[:space:]]*$' \
        "$rabbitmq_conf" || fail "$rabbitmq_conf does not load /etc/rabbitmq/definitions.json"
fi
if [[ -f $definitions ]]; then
    if ! command -v jq >/dev/null; then
        echo "jq is missing; installing it with apt-get"
        apt_install jq || fail "cannot install jq with apt-get"
    fi
    if command -v jq >/dev/null; then
        # The shape load_definitions needs, and least privilege: no service user may configure.
        if ! summary=$(jq -er '
            if (.users | length) > 0 and (.vhosts | length) > 0 and (.queues | length) > 0
               and ([.permissions[] | select(.configure != "^$") | .user] as $configurers
                    | [.users[] | select(.tags == "administrator") | .name] as $admins
                    | ($configurers - $admins) == [])
            then "\(.users | length) users, \(.queues | length) queues, \(.bindings | length) bindings"
            else error("no users, vhosts or queues, or a service user may configure") end' \
            "$definitions" 2>&1); then
            printf '%s\n' "$summary" >&2
            fail "$definitions is not a valid definitions document"
        else
            echo "$definitions: $summary"
        fi
    fi
fi
if [[ -f compose.yaml ]]; then
    failures_before=$failures
    # Every file compose mounts from the repository must exist.
    while read -r mounted; do
        [[ -e $mounted ]] || fail "compose.yaml mounts $mounted, which does not exist"
    done < <(grep -Eo '\./deploy/[^:"[:space:]]+' compose.yaml | sort -u)
    # AMQP and the management UI are not an edge: loopback only.
    for port in 5672 15672; do
        published=$(grep -Eo "\"[^\"]*:?$port:$port\"" compose.yaml || true)
        if [[ -z $published ]]; then
            fail "compose.yaml does not publish port $port"
        elif grep -vq "^\"127\.0\.0\.1:$port:$port\"\$" <<<"$published"; then
            fail "compose.yaml publishes port $port beyond 127.0.0.1: $published"
        fi
    done
    ((failures > failures_before)) ||
        echo "compose.yaml mounts existing files; AMQP and the management UI on 127.0.0.1 only"
fi

step "Dockerfiles"
for svc in "${services[@]}"; do
    dockerfile="$svc/Dockerfile"
    if [[ ! -f $dockerfile ]]; then
        fail "$dockerfile is missing"
        continue
    fi
    grep -Eq -- "cargo build --release --locked -p $svc( |$)" "$dockerfile" ||
        fail "$dockerfile does not build with 'cargo build --release --locked -p $svc'"
    # The last USER instruction decides who runs the service: it must name a non-root user.
    user=$(grep -Ei '^[[:space:]]*USER[[:space:]]+' "$dockerfile" | tail -n 1 | awk '{print $2}' || true)
    user=${user%%:*}
    if [[ -z $user ]]; then
        fail "$dockerfile has no USER instruction (the service must not run as root)"
    elif [[ $user == root || $user == 0 ]]; then
        fail "$dockerfile runs the service as root (USER $user)"
    else
        echo "$dockerfile: builds $svc, runs as user $user"
    fi
done
if [[ ! -f .dockerignore ]]; then
    fail ".dockerignore is missing (the build context would include target/)"
elif ! grep -Eqx '(\*\*/)?/?target/?' .dockerignore; then
    fail ".dockerignore does not exclude target/"
fi
if command -v hadolint >/dev/null; then
    hadolint "${services[@]/%//Dockerfile}" || fail "hadolint reported problems in the Dockerfiles"
    echo "hadolint: clean"
else
    echo "hadolint not installed; skipping the Dockerfile lint"
fi

step "shellcheck scripts/*.sh scripts/lib/*.sh deploy/postgres/*.sh"
if ! command -v shellcheck >/dev/null; then
    echo "shellcheck is missing; installing it with apt-get"
    apt_install shellcheck || fail "cannot install shellcheck with apt-get"
fi
if command -v shellcheck >/dev/null; then
    shellcheck --version | sed -n 2p
    # -x: follow what the scripts source (scripts/lib/).
    if shellcheck -x scripts/*.sh scripts/lib/*.sh deploy/postgres/*.sh; then
        echo "shellcheck: clean:" scripts/*.sh scripts/lib/*.sh deploy/postgres/*.sh
    else
        fail "shellcheck reported problems in scripts/*.sh, scripts/lib/*.sh or deploy/postgres/*.sh"
    fi
fi

if ((failures > 0)); then
    printf '\ncheck-deployment: %d check(s) failed\n' "$failures" >&2
    exit 1
fi
printf '\ncheck-deployment: all checks passed\n'
