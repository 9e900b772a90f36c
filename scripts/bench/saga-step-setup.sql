-- The tables one saga step touches in order-svc, shaped like the real ones (see
-- order-svc/src/migration.rs and outbox/src/migration.rs), with 10,000 orders to step.
DROP TABLE IF EXISTS order_transitions, orders, processed_messages, outbox_messages;
CREATE TABLE orders (
    n integer PRIMARY KEY,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    status text NOT NULL,
    version integer NOT NULL DEFAULT 0,
    cancellation_reason text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (n, status) SELECT n, 'Pending' FROM generate_series(1, 10000) AS n;
CREATE TABLE order_transitions (
    order_n integer NOT NULL,
    seq integer NOT NULL,
    from_state text NOT NULL,
    to_state text NOT NULL,
    event text NOT NULL,
    effects jsonb NOT NULL,
    message_id uuid,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_n, seq)
);
CREATE TABLE processed_messages (
    consumer text NOT NULL,
    message_id uuid NOT NULL,
    type text NOT NULL,
    correlation_id uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE TABLE outbox_messages (
    id uuid PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    type text NOT NULL,
    payload jsonb NOT NULL,
    correlation_id uuid NOT NULL,
    causation_id uuid,
    headers jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL,
    processed_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    next_attempt_at timestamptz
);
CREATE INDEX outbox_messages_unprocessed ON outbox_messages (seq) WHERE processed_at IS NULL;
