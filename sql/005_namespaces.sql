-- 005_namespaces: sites served by the same daemons and database keep apart
-- (issue 12, point 13; docs/nginx.md, "Namespaces").
--
-- A location's $chat_namespace (empty: the one shared namespace, as before)
-- reaches the daemons as X-Chat-Namespace / CHAT_NAMESPACE. Inside the
-- daemons and here a room is known by its key: "ns:room", or the room alone
-- in the shared namespace (core/chat_ns.h). ':' is in neither a room nor a
-- namespace, so nothing stored before changes meaning, and every row of
-- the shared namespace stays as it was. What clients get never has the
-- namespace in it:
--  * chat_event_json renders the room as clients know it (chat_room_local);
--  * a line on channel 'chat' of a namespaced room is "ns\t" and then the
--    event (chat_bus_prefix): the daemons route by the key and forward the
--    event's bytes unchanged. Hints keep the key in "room" (no client sees
--    a hint);
--  * chat_row_json (history, search, catch-up reads) renders without the
--    prefix.
-- Users, bans and kicks stay by name, across namespaces: a name is the one
-- the admin's auth gives (docs/nginx.md says so).

-- The room of a key, as clients know it.
CREATE FUNCTION chat_room_local(p_room text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT substr(p_room, strpos(p_room, ':') + 1);
$$;

-- What goes before a room's line on channel 'chat': "ns\t", or nothing in
-- the shared namespace.
CREATE FUNCTION chat_bus_prefix(p_room text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(p_room, ':') > 0 THEN split_part(p_room, ':', 1) || E'\t' ELSE '' END;
$$;

ALTER TABLE rooms DROP CONSTRAINT rooms_name_check;
ALTER TABLE rooms ADD CONSTRAINT rooms_name_check
    CHECK (name ~ '^([a-z0-9][a-z0-9_-]{0,31}:)?[a-z0-9][a-z0-9_-]{0,63}$');
ALTER TABLE presence DROP CONSTRAINT presence_room_check;
ALTER TABLE presence ADD CONSTRAINT presence_room_check
    CHECK (room ~ '^([a-z0-9][a-z0-9_-]{0,31}:)?[a-z0-9][a-z0-9_-]{0,63}$');
-- retention patterns may name a namespace: "site-b:*", "site-b:team-*"
-- ("*" and "lobby" are patterns of keys too: "*" is every room of every
-- namespace, "lobby" the shared namespace's lobby)
ALTER TABLE retention DROP CONSTRAINT retention_pattern_check;
ALTER TABLE retention ADD CONSTRAINT retention_pattern_check
    CHECK (pattern ~ '^(\*|([a-z0-9][a-z0-9_-]{0,31}:)?(\*|[a-z0-9][a-z0-9_-]{0,63}\*?))$');

-- The event as clients receive it; on the bus with its namespace first.
CREATE OR REPLACE FUNCTION chat_event_json(p_room text, p_seq bigint, p_sender text, p_text text,
                                           p_ts timestamptz, p_cid text, p_ref bigint,
                                           p_change text, p_edited timestamptz,
                                           p_deleted timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chat_bus_prefix(p_room) || '{"op":"msg","room":' || to_json(chat_room_local(p_room))::text
        || ',"seq":' || p_seq
        || ',"user":' || to_json(p_sender)::text
        || CASE WHEN p_text IS NULL THEN '' ELSE ',"text":' || to_json(p_text)::text END
        || ',"ts":"' || chat_ts(p_ts) || '"'
        || CASE WHEN p_cid IS NULL OR p_deleted IS NOT NULL THEN ''
                ELSE ',"cid":' || to_json(p_cid)::text END
        || CASE WHEN p_change IS NOT NULL THEN ',"' || p_change || '":' || p_ref
                WHEN p_edited IS NOT NULL AND p_deleted IS NULL
                THEN ',"edited":"' || chat_ts(p_edited) || '"'
                ELSE '' END
        || CASE WHEN p_deleted IS NULL THEN '' ELSE ',"deleted":true' END
        || '}';
$$;

-- A row as the daemons' reads select it: the event alone, no prefix.
CREATE OR REPLACE FUNCTION chat_row_json(m messages) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chat_event_json(chat_room_local(m.room), m.seq, m.sender, m.text, m.ts,
                           coalesce(m.cid, m.ccid), m.ref, m.change, m.edited, m.deleted);
$$;

-- 004's, with each presence line in its room's namespace.
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
               chat_bus_prefix(r.room) || '{"op":"presence","room":'
                   || to_json(chat_room_local(r.room))::text AS head,
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
