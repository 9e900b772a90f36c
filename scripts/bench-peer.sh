#!/usr/bin/env bash
# The peer benchmark of the outbox relay: builds (release) and runs peers/hexeract-relay, which
# drains a backlog of committed outbox rows through hexeract 0.6's PostgreSQL outbox worker and
# RabbitMQ bus (persistent, confirmed), on the same servers and message size as
# `cargo bench -p outbox --bench relay`, and prints its Markdown rows for BENCHMARKS.md
# (settings and checks on stderr). The peer is a workspace of its own: the main workspace
# never builds it.
#
#   scripts/bench-peer.sh     (PEER_BENCH_MESSAGES [20000], PEER_BENCH_CASES [default,tuned,scaled],
#                              PEER_BENCH_WORKERS [8], PEER_TARGET_DIR; servers as testkit: TESTKIT_POSTGRES_URL,
#                              TESTKIT_AMQP_URL, TESTKIT_RABBITMQCTL)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
manifest=peers/hexeract-relay/Cargo.toml
# A target directory of its own (PEER_TARGET_DIR), never the workspace's CARGO_TARGET_DIR: the
# peer shares no build with the workspace, and would only wait on the workspace's build lock.
export CARGO_TARGET_DIR=${PEER_TARGET_DIR:-$root/target/peer-hexeract-relay}
[[ $CARGO_TARGET_DIR == /* ]] || CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR"
cargo build --release --locked -q --manifest-path "$manifest"
"$CARGO_TARGET_DIR/release/hexeract-relay"
