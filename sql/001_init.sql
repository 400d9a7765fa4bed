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
-- STABLE, not IMMUTABLE, here and in chat_msg_json: that is what to_char()
-- and to_json() are, and PostgreSQL inlines a SQL function into the
-- calling query only when its body is no more volatile than it is
-- declared; declared IMMUTABLE, each call was a separate function
-- execution (about 20 us per message, in chat_post and in every catch-up).
CREATE FUNCTION chat_ts(p_ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
$$;

-- The "msg" event exactly as clients receive it. Rendered here, once, so
-- that every process and every delivery path sends the same bytes.
CREATE FUNCTION chat_msg_json(p_room text, p_seq bigint, p_sender text, p_text text,
                              p_ts timestamptz, p_cid text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
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
-- the original row's seq and ts are returned and nothing is inserted; a
-- (room, sender, cid) repeated inside the batch is stored once, and the
-- later occurrences get the first one's seq and ts with dup = true; a NULL
-- cid is never deduplicated). Rooms are created on first use. Notifies
-- channel 'chat' with one line per new message, in input order: the whole
-- "msg" event, or {"op":"hint","room":R,"seq":N} when it does not fit;
-- lines are packed into as few NOTIFYs as fit.
--
-- Set-based, like 002: whatever n, a call costs the same few statements
-- (create rooms, lock rooms, one statement that looks up duplicates,
-- advances each room's last_seq once and inserts every new row, then the
-- NOTIFYs), not one round of statements per message. The room locks are
-- taken first, in name order, and every later statement takes its snapshot
-- after them, so a duplicate committed by another session just before is
-- seen, and seq is gap-free and committed in order per room (invariant 2).
-- Every new message of a call gets the same ts, read after the locks: per
-- room, ts never goes backwards as seq grows.
CREATE FUNCTION chat_post(p_room text[], p_sender text[], p_text text[], p_cid text[])
RETURNS TABLE (idx int, seq bigint, ts text, dup boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n       int := coalesce(cardinality(p_room), 0);
    v_ts    timestamptz;
    v_old   timestamptz;
    v_seq   bigint;
    v_line  text;
    r_seq   bigint[];
    r_ts    timestamptz[];
    r_dup   boolean[];
    v_lines text[];
    v_len   int;
    k       int;
    first   int;
    size    int;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_sender) IS DISTINCT FROM n OR cardinality(p_text) IS DISTINCT FROM n
       OR cardinality(p_cid) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'chat_post: arrays of different lengths';
    END IF;

    IF n = 1 THEN
        -- A lone message (the common case when traffic is light): the same
        -- steps with plain statements, cheaper to plan and run than the
        -- set-based statement below.
        INSERT INTO rooms (name) VALUES (p_room[1]) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM rooms WHERE name = p_room[1] FOR NO KEY UPDATE;
        v_ts := clock_timestamp();
        IF p_cid[1] IS NOT NULL THEN
            SELECT m.seq, m.ts INTO v_seq, v_old FROM messages m
                WHERE m.room = p_room[1] AND m.sender = p_sender[1] AND m.cid = p_cid[1];
            IF FOUND THEN
                idx := 1; seq := v_seq; ts := chat_ts(v_old); dup := true;
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
        UPDATE rooms SET last_seq = last_seq + 1 WHERE name = p_room[1]
            RETURNING last_seq INTO v_seq;
        INSERT INTO messages (room, seq, sender, text, cid, ts)
            VALUES (p_room[1], v_seq, p_sender[1], p_text[1], p_cid[1], v_ts);
        v_line := chat_msg_json(p_room[1], v_seq, p_sender[1], p_text[1], v_ts, p_cid[1]);
        IF octet_length(v_line) > 7900 THEN
            v_line := '{"op":"hint","room":' || to_json(p_room[1])::text || ',"seq":' || v_seq || '}';
        END IF;
        PERFORM pg_notify('chat', v_line);
        idx := 1; seq := v_seq; ts := chat_ts(v_ts); dup := false;
        RETURN NEXT;
        RETURN;
    END IF;

    -- create missing rooms, then lock every room of the batch in name
    -- order (a fixed order: two batches never deadlock)
    INSERT INTO rooms (name)
        SELECT DISTINCT r FROM unnest(p_room) AS r ORDER BY r
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM rooms WHERE name = ANY (p_room) ORDER BY name FOR NO KEY UPDATE;

    -- after the lock: per room, ts never goes backwards as seq grows
    v_ts := clock_timestamp();

    -- One statement, its snapshot taken after the locks. Each message
    -- refers to the first message of the batch with the same (room, sender,
    -- cid) (itself when cid is NULL); only those firsts are looked up and,
    -- if not stored yet, inserted, numbered per room in input order from
    -- last_seq + 1 (rooms.last_seq advanced once per room).
    WITH inp AS (
        SELECT x.i::int AS i, x.room, x.sender, x.text, x.cid,
               CASE WHEN x.cid IS NULL THEN x.i::int
                    ELSE min(x.i::int) OVER (PARTITION BY x.room, x.sender, x.cid) END AS first_i
        FROM unnest(p_room, p_sender, p_text, p_cid) WITH ORDINALITY AS x (room, sender, text, cid, i)
    ), old AS (
        SELECT i.i, m.seq, m.ts
        FROM inp i JOIN messages m ON m.room = i.room AND m.sender = i.sender AND m.cid = i.cid
        WHERE i.first_i = i.i
    ), fresh AS (
        SELECT i.i, i.room, i.sender, i.text, i.cid,
               row_number() OVER (PARTITION BY i.room ORDER BY i.i) AS k
        FROM inp i
        WHERE i.first_i = i.i AND NOT EXISTS (SELECT 1 FROM old o WHERE o.i = i.i)
    ), upd AS (
        UPDATE rooms r SET last_seq = r.last_seq + c.cnt
        FROM (SELECT f.room, count(*) AS cnt FROM fresh f GROUP BY f.room) c
        WHERE r.name = c.room
        RETURNING r.name, r.last_seq - c.cnt AS base
    ), newrow AS (
        SELECT f.i, f.room, u.base + f.k AS seq, f.sender, f.text, f.cid
        FROM fresh f JOIN upd u ON u.name = f.room
    ), ins AS (
        INSERT INTO messages (room, seq, sender, text, cid, ts)
            SELECT nr.room, nr.seq, nr.sender, nr.text, nr.cid, v_ts FROM newrow nr
    )
    SELECT array_agg(coalesce(o.seq, nr.seq) ORDER BY i.i),
           array_agg(coalesce(o.ts, v_ts) ORDER BY i.i),
           array_agg(o.i IS NOT NULL OR i.i <> i.first_i ORDER BY i.i),
           array_agg(CASE WHEN octet_length(l.j) > 7900
                          THEN '{"op":"hint","room":' || to_json(nr.room)::text || ',"seq":' || nr.seq || '}'
                          ELSE l.j END ORDER BY i.i)
               FILTER (WHERE nr.i = i.i)
        INTO r_seq, r_ts, r_dup, v_lines
    FROM inp i
    LEFT JOIN old o ON o.i = i.first_i
    LEFT JOIN newrow nr ON nr.i = i.first_i
    LEFT JOIN LATERAL (SELECT chat_msg_json(nr.room, nr.seq, nr.sender, nr.text, v_ts, nr.cid) AS j
                       WHERE nr.i = i.i) l ON true;

    RETURN QUERY
        SELECT x.i::int, x.seq, chat_ts(x.ts), x.dup
        FROM unnest(r_seq, r_ts, r_dup) WITH ORDINALITY AS x (seq, ts, dup, i)
        ORDER BY x.i;

    -- Pack the lines (input order; a line longer than 7900 bytes was
    -- replaced by its hint above) into as few NOTIFYs of at most 7900
    -- bytes as they fit, joined with "\n". Only lengths are handled per
    -- line here; each payload is joined once.
    IF v_lines IS NULL THEN
        RETURN;
    END IF;
    first := 1;
    size := 0;
    FOR k IN 1 .. cardinality(v_lines) LOOP
        v_len := octet_length(v_lines[k]);
        IF k > first AND size + v_len + 1 > 7900 THEN
            PERFORM pg_notify('chat', array_to_string(v_lines[first:k - 1], E'\n'));
            first := k;
            size := v_len;
        ELSIF k > first THEN
            size := size + 1 + v_len;
        ELSE
            size := v_len;
        END IF;
    END LOOP;
    PERFORM pg_notify('chat', array_to_string(v_lines[first:cardinality(v_lines)], E'\n'));
END;
$$;

-- Reading: catch-up past a cursor and history pages use the primary key.
-- SELECT seq, chat_msg_json(room, seq, sender, text, ts, cid) FROM messages
--     WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3;
