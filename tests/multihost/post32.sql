-- pgbench: 32 messages per chat_post() call, as the daemons' group commit
-- sends them under load (one transaction, one NOTIFY per ~8 kB of lines),
-- over 100 rooms.
\set r random(1, 100)
SELECT count(*) FROM chat_post(
    array_fill('bench-' || :r, ARRAY[32]), array_fill('~bench'::text, ARRAY[32]),
    array_fill('a message of about the usual size, forty-odd bytes'::text, ARRAY[32]),
    ARRAY(SELECT 'c' || :client_id || '-' || g || '-' || random() FROM generate_series(1, 32) g));
