-- 001_init: rooms, messages, users, and the one function that posts.
--
-- Invariants (docs/architecture.md):
--  * seq is gap-free per room: chat_post takes the room row's lock, so the
--    commits of one room are serialized in seq order.
--  * persist, then publish: the NOTIFY is issued by the same transaction,
--    so listeners hear of a message only once it is committed.
--  * NOTIFY is a hint: a payload carries whole messages when it fits the
--    8000-byte limit and only (room, seq) when not; listeners read the
--    table for anything they did not get whole.

CREATE TABLE rooms (
    name     text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    room   text NOT NULL REFERENCES rooms (name),
    seq    bigint NOT NULL CHECK (seq > 0),
    sender text NOT NULL CHECK (sender ~ '^~?[A-Za-z0-9_.-]{1,32}$'),
    text   text NOT NULL CHECK (octet_length(text) BETWEEN 1 AND 65536),
    cid    text CHECK (cid ~ '^[ -~]{1,64}$'),
    ts     timestamptz NOT NULL,
    PRIMARY KEY (room, seq),
    UNIQUE (room, sender, cid)
);

-- What the chat knows of each user: written when a connection opens or
-- closes, never per message. Guests are stored with their "~" prefix.
CREATE TABLE users (
    name          text PRIMARY KEY CHECK (name ~ '^~?[A-Za-z0-9_.-]{1,32}$'),
    authenticated boolean NOT NULL,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION chat_user_seen(p_name text, p_authenticated boolean) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO users AS u (name, authenticated) VALUES (p_name, p_authenticated)
    ON CONFLICT (name) DO UPDATE SET last_seen = now(),
        authenticated = u.authenticated OR excluded.authenticated;
$$;

-- A timestamp as the protocol writes it: UTC, milliseconds, "Z".
CREATE FUNCTION chat_ts(p_ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
$$;

-- The "msg" event exactly as clients receive it. Rendered here, once, so
-- that every process and every delivery path sends the same bytes.
CREATE FUNCTION chat_msg_json(p_room text, p_seq bigint, p_sender text, p_text text,
                              p_ts timestamptz, p_cid text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{"op":"msg","room":' || to_json(p_room)::text
        || ',"seq":' || p_seq
        || ',"user":' || to_json(p_sender)::text
        || ',"text":' || to_json(p_text)::text
        || ',"ts":"' || chat_ts(p_ts) || '"'
        || CASE WHEN p_cid IS NULL THEN '' ELSE ',"cid":' || to_json(p_cid)::text END
        || '}';
$$;

-- Posts n messages (parallel arrays; cid may be NULL) in one transaction:
-- group commit for the daemons. Per message, in input order: idx (1-based),
-- seq, ts (protocol format) and dup (true when (room, sender, cid) existed:
-- the original row's seq and ts are returned and nothing is inserted).
-- Rooms are created on first use. Notifies channel 'chat' with one line per
-- new message: the whole "msg" event, or {"op":"hint","room":R,"seq":N}
-- when it does not fit; lines are packed into as few NOTIFYs as fit.
CREATE FUNCTION chat_post(p_room text[], p_sender text[], p_text text[], p_cid text[])
RETURNS TABLE (idx int, seq bigint, ts text, dup boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n       int := coalesce(cardinality(p_room), 0);
    k       int;
    v_seq   bigint;
    v_ts    timestamptz;
    line    text;
    payload text := '';
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_sender) IS DISTINCT FROM n OR cardinality(p_text) IS DISTINCT FROM n
       OR cardinality(p_cid) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'chat_post: arrays of different lengths';
    END IF;

    -- create missing rooms, then lock every room of the batch in name
    -- order (a fixed order: two batches never deadlock)
    INSERT INTO rooms (name)
        SELECT DISTINCT r FROM unnest(p_room) AS r ORDER BY r
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM rooms WHERE name = ANY (p_room) ORDER BY name FOR UPDATE;

    FOR k IN 1 .. n LOOP
        idx := k;
        IF p_cid[k] IS NOT NULL THEN
            SELECT m.seq, m.ts INTO v_seq, v_ts FROM messages m
                WHERE m.room = p_room[k] AND m.sender = p_sender[k] AND m.cid = p_cid[k];
            IF FOUND THEN
                seq := v_seq; ts := chat_ts(v_ts); dup := true;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        UPDATE rooms SET last_seq = last_seq + 1 WHERE name = p_room[k]
            RETURNING last_seq INTO v_seq;
        -- after the lock: per room, ts never goes backwards as seq grows
        v_ts := clock_timestamp();
        INSERT INTO messages (room, seq, sender, text, cid, ts)
            VALUES (p_room[k], v_seq, p_sender[k], p_text[k], p_cid[k], v_ts);
        seq := v_seq; ts := chat_ts(v_ts); dup := false;
        RETURN NEXT;

        line := chat_msg_json(p_room[k], v_seq, p_sender[k], p_text[k], v_ts, p_cid[k]);
        IF octet_length(line) > 7900 THEN
            line := '{"op":"hint","room":' || to_json(p_room[k])::text || ',"seq":' || v_seq || '}';
        END IF;
        IF octet_length(payload) + octet_length(line) + 1 > 7900 THEN
            PERFORM pg_notify('chat', payload);
            payload := '';
        END IF;
        payload := CASE WHEN payload = '' THEN line ELSE payload || E'\n' || line END;
    END LOOP;
    IF payload <> '' THEN
        PERFORM pg_notify('chat', payload);
    END IF;
END;
$$;

-- Reading: catch-up past a cursor and history pages use the primary key.
-- SELECT seq, chat_msg_json(room, seq, sender, text, ts, cid) FROM messages
--     WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3;
