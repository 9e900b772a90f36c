-- One saga step as order-svc writes it, one message per transaction: the inbox row, the
-- order read and its versioned update, the timeline row, one effect in the outbox.
\set n random(1, 10000)
BEGIN;
INSERT INTO processed_messages (consumer, message_id, type, correlation_id)
    VALUES ('order-svc.PaymentSucceeded', gen_random_uuid(), 'PaymentSucceeded', gen_random_uuid());
SELECT status, version FROM orders WHERE n = :n;
UPDATE orders SET status = 'Paid', version = version + 1, updated_at = now() WHERE n = :n;
INSERT INTO order_transitions (order_n, seq, from_state, to_state, event, effects)
    SELECT :n, version, 'Reserved', 'Paid', 'PaymentSucceeded', '["CommitStock"]' FROM orders WHERE n = :n;
INSERT INTO outbox_messages (id, type, payload, correlation_id, occurred_at)
    VALUES (gen_random_uuid(), 'CommitStock', '{"order_id": "0199c3e1-0000-7000-8000-000000000001"}', gen_random_uuid(), now());
COMMIT;
