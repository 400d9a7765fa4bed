-- 004_anonymous: rooms and users exist because someone posted or signed
-- in, not because someone polled (issue 12, point 9).
--
-- Before: a presence entry created its room (presence.room referenced
-- rooms), so 200 anonymous polls naming 20 new rooms each made 4,000
-- permanent rooms rows in 0.6 s, and chat_users_seen made every guest name
-- a permanent users row. Now:
--  * presence rows need no rooms row: chat_presence_apply no longer
--    creates rooms. What made "first node in / last node out" exact was
--    the room row lock; it is now a transaction-level advisory lock per
--    room (pg_advisory_xact_lock(CHAT_LOCK_CLASS, hashtext(room)), taken
--    for every room of the call in key order before anything else of the
--    rooms; a hash collision only makes two rooms wait for each other).
--    Rooms that exist are still locked too, after it, in name order (the
--    order of chat_post), as before: nothing changes between presence and
--    posts.
--  * rooms are made by chat_post (001), as they always were.
--  * chat_users_seen writes signed-in users only; guests are known by the
--    sender of their messages.
--  * chat_prune (003) also removes, on the schedule of its timer, guest
--    users rows not seen for p_guests (default 30 days: rows left from
--    before this migration) and rooms without a message ever (last_seq 0:
--    made by presence before this migration) older than p_empty_rooms
--    (default 1 day). A room that had messages is never removed: its seq
--    must never start again (clients hold cursors into it).

ALTER TABLE presence DROP CONSTRAINT IF EXISTS presence_room_fkey;
ALTER TABLE presence ADD CONSTRAINT presence_room_check
    CHECK (room ~ '^[a-z0-9][a-z0-9_-]{0,63}$');

-- The advisory lock class of a room's presence: 'chat' in ASCII.
CREATE FUNCTION chat_lock_class() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 1667785076 $$;

CREATE OR REPLACE FUNCTION chat_presence_apply(p_node text[], p_room text[], p_member text[],
                                               p_online boolean[])
RETURNS void
LANGUAGE plpgsql
-- planned for each call: see the top of 002_presence.sql
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n        int := coalesce(cardinality(p_room), 0);
    a_node   text[];
    a_room   text[];
    a_member text[];
    a_online boolean[];
    a_idx    bigint[];
    v_rooms  text[];
    v_lines  text[];
    line     text;
    payload  text := '';
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    -- Before any lock: the net effect per (node, room, member), i.e. its
    -- final state and where its final run of equal entries began. (The
    -- arrays are aggregated in one pass, so they stay aligned.)
    SELECT array_agg(node), array_agg(room), array_agg(member), array_agg(online), array_agg(idx)
        INTO a_node, a_room, a_member, a_online, a_idx
    FROM (
        SELECT DISTINCT ON (room, member, node) node, room, member, online, idx
        FROM (
            SELECT x.node, x.room, x.member, x.idx, coalesce(x.online, false) AS online,
                   coalesce(x.online, false) IS DISTINCT FROM
                       lag(coalesce(x.online, false)) OVER (PARTITION BY x.room, x.member, x.node
                                                            ORDER BY x.idx) AS starts_run
            FROM unnest(p_node, p_room, p_member, p_online) WITH ORDINALITY
                 AS x (node, room, member, online, idx)
            WHERE x.idx <= n
        ) e
        WHERE starts_run
        ORDER BY room, member, node, idx DESC
    ) net;
    v_rooms := ARRAY(SELECT DISTINCT r FROM unnest(p_room) AS r ORDER BY r);

    -- every room of the call, existing or not: its advisory lock, in key
    -- order (so two calls never wait for each other in a cycle); then the
    -- rows of the rooms that exist, in name order, as chat_post does. No
    -- room is created.
    PERFORM pg_advisory_xact_lock(chat_lock_class(), k)
        FROM (SELECT DISTINCT hashtext(r) AS k FROM unnest(v_rooms) AS r ORDER BY 1) s;
    PERFORM 1 FROM rooms WHERE name = ANY (v_rooms) ORDER BY name FOR NO KEY UPDATE;

    -- One statement: every part of it sees the table as it was before
    -- (one snapshot, taken after the locks above); the INSERT and DELETE
    -- tell through RETURNING what they really changed.
    WITH net AS (
        SELECT * FROM unnest(a_node, a_room, a_member, a_online, a_idx)
            AS t (node, room, member, online, idx)
    ), ins AS (
        INSERT INTO presence (room, member, node)
            SELECT room, member, node FROM net WHERE online
            ON CONFLICT DO NOTHING
            RETURNING room, member, node
    ), del AS (
        DELETE FROM presence p USING net
            WHERE NOT net.online AND p.room = net.room AND p.member = net.member
              AND p.node = net.node
            RETURNING p.room, p.member, p.node
    ), chg AS (
        -- rows really added (+1) or removed (-1), per (room, member)
        SELECT c.room, c.member, sum(c.d) AS d, min(net.idx) AS idx
        FROM (SELECT room, member, node, 1 AS d FROM ins
              UNION ALL
              SELECT room, member, node, -1 FROM del) c
        JOIN net USING (node, room, member)
        GROUP BY c.room, c.member
    ), tr AS (
        -- global transitions: no row before and some after, or the reverse
        SELECT chg.room, chg.member, chg.idx, b.rows = 0 AS online
        FROM chg CROSS JOIN LATERAL (
            SELECT count(*) AS rows FROM presence p
            WHERE p.room = chg.room AND p.member = chg.member) b
        WHERE (b.rows = 0) <> (b.rows + chg.d = 0)
    ), per_room AS (
        SELECT room, count(*) AS changes,
               count(*) FILTER (WHERE online) - count(*) FILTER (WHERE NOT online) AS delta,
               coalesce(array_agg(member ORDER BY idx) FILTER (WHERE online), '{}') AS ons,
               coalesce(array_agg(member ORDER BY idx) FILTER (WHERE NOT online), '{}') AS offs
        FROM tr GROUP BY room
    ), parts AS (
        SELECT r.room,
               '{"op":"presence","room":' || to_json(r.room)::text AS head,
               CASE WHEN r.changes <= 50 THEN
                   ',"online":' || array_to_json(r.ons)::text
                   || ',"offline":' || array_to_json(r.offs)::text END AS lists,
               ',"count":' || (b.members + r.delta) || '}' AS tail
        FROM per_room r CROSS JOIN LATERAL (
            SELECT count(DISTINCT member) AS members FROM presence p WHERE p.room = r.room) b
    )
    SELECT array_agg(CASE WHEN octet_length(head || lists || tail) <= 7900
                          THEN head || lists || tail ELSE head || tail END
                     ORDER BY room)
        INTO v_lines FROM parts;

    -- one iteration per changed room, not per pair
    FOREACH line IN ARRAY coalesce(v_lines, '{}') LOOP
        IF payload <> '' AND octet_length(payload) + octet_length(line) + 1 > 7900 THEN
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

-- Users seen: signed-in users only (a guest names itself; its name is not
-- kept until it says something, and then as the sender of its messages).
-- Rows are written in name order (two concurrent batches never deadlock).
CREATE OR REPLACE FUNCTION chat_users_seen(p_names text[], p_authenticated boolean[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO users AS u (name, authenticated)
        SELECT DISTINCT n, true FROM unnest(p_names, p_authenticated) AS t (n, a)
        WHERE a AND left(n, 1) <> '~'
        ORDER BY n
    ON CONFLICT (name) DO UPDATE SET last_seen = now(), authenticated = true;
$$;

CREATE OR REPLACE FUNCTION chat_user_seen(p_name text, p_authenticated boolean) RETURNS void
LANGUAGE sql AS $$
    SELECT chat_users_seen(ARRAY[p_name], ARRAY[p_authenticated]);
$$;

-- chat_prune (003) and, in the same run, what nobody posted: guest rows
-- not seen for p_guests and rooms that never had a message, older than
-- p_empty_rooms (NULL: keep them). Each in batches of p_batch rows,
-- committed one by one; a room some transaction holds (a post creating
-- it) is skipped, for the next run.
DROP PROCEDURE chat_prune(bigint, int, float8);
CREATE PROCEDURE chat_prune(INOUT removed bigint DEFAULT 0, p_batch int DEFAULT 2000,
                            p_rest float8 DEFAULT 1, p_guests interval DEFAULT '30 days',
                            p_empty_rooms interval DEFAULT '1 day')
LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    v_keep  interval;
    v_h     bigint;
    v_upto  bigint;
    v_n     bigint;
    v_t0    timestamptz;
BEGIN
    removed := 0;
    FOR r IN SELECT name FROM rooms ORDER BY name LOOP
        v_keep := chat_retention_for(r.name);
        CONTINUE WHEN v_keep IS NULL;
        LOOP
            v_t0 := clock_timestamp();
            SELECT horizon INTO v_h FROM rooms WHERE name = r.name FOR NO KEY UPDATE;
            -- ts grows with seq in a room, so what is too old is a prefix:
            -- if the oldest message left is not too old, nothing is
            SELECT max(x.seq) INTO v_upto FROM (
                SELECT m.seq, m.ts FROM messages m
                WHERE m.room = r.name AND m.seq > v_h
                ORDER BY m.seq LIMIT p_batch) x
            WHERE x.ts < now() - v_keep;
            IF v_upto IS NULL THEN
                COMMIT;
                EXIT;
            END IF;
            DELETE FROM messages m WHERE m.room = r.name AND m.seq > v_h AND m.seq <= v_upto;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            UPDATE rooms SET horizon = greatest(horizon, v_upto) WHERE name = r.name;
            removed := removed + v_n;
            COMMIT;
            PERFORM pg_sleep(least(p_rest * extract(epoch FROM clock_timestamp() - v_t0), 1));
        END LOOP;
    END LOOP;
    LOOP
        EXIT WHEN p_guests IS NULL;
        DELETE FROM users WHERE name IN (
            SELECT name FROM users WHERE NOT authenticated AND last_seen < now() - p_guests
            LIMIT p_batch FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        COMMIT;
        EXIT WHEN v_n < p_batch;
    END LOOP;
    LOOP
        EXIT WHEN p_empty_rooms IS NULL;
        DELETE FROM rooms WHERE name IN (
            SELECT name FROM rooms WHERE last_seq = 0 AND created < now() - p_empty_rooms
            LIMIT p_batch FOR UPDATE SKIP LOCKED)
          AND last_seq = 0;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        COMMIT;
        EXIT WHEN v_n < p_batch;
    END LOOP;
END;
$$;
