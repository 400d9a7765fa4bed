-- pgbench: one message per chat_post() call (one transaction, one NOTIFY),
-- in one of 100 rooms, with a cid (the usual case).
\set r random(1, 100)
\set k random(1, 1000000000)
SELECT * FROM chat_post(ARRAY['bench-' || :r], ARRAY['~bench'],
    ARRAY['a message of about the usual size, forty-odd bytes'],
    ARRAY['c' || :client_id || '-' || :k]);
