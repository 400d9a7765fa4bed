-- 002_presence: who is in which room, across every daemon process.
--
-- Each daemon process is a node. A node keeps, per room, how many of its
-- own connections (or recent long-polls) each member has, and tells the
-- database only of local transitions (first connection in, last one out),
-- batched once a second. A member is online in a room while any node has a
-- presence row for it. Global transitions are announced on channel 'chat'
-- as the presence event clients receive. A node that dies stops beating;
-- another node reaps it and its members go offline.
--
-- Everything here is set-based: a call costs a few statements whatever the
-- number of (room, member) pairs, and holds its room locks (which chat_post
-- waits for) for one bulk statement, not for a loop over the pairs.
--
-- Locking, always in this order (so that nothing here deadlocks with
-- itself or with chat_post):
--  1. node rows: the calling node's row FOR KEY SHARE (chat_presence,
--     chat_presence_sync) or the rows of the nodes going away FOR UPDATE
--     (chat_node_down; chat_node_beat with SKIP LOCKED, so a reaper never
--     waits for a node that is busy, hence alive). Taken first because the
--     presence foreign key takes KEY SHARE on the node row anyway: taken
--     after the rooms, it deadlocked with a reaper holding the node row
--     FOR UPDATE and waiting for those rooms.
--  2. rooms: missing ones created (INSERT ... ORDER BY name ON CONFLICT DO
--     NOTHING), then every room of the call locked once, in name order, in
--     one statement, FOR NO KEY UPDATE. That is enough: presence calls on a
--     room exclude each other (NO KEY UPDATE conflicts with itself), which is
--     what makes "first node in / last node out" exact, and the room's key
--     never changes. chat_post (001) locks its rooms in the same name order
--     and mode; the mode conflicts with itself, so a post and a presence
--     call on one room still run one after the other (briefly, now).
--  3. presence rows, in bulk.
--
-- The set-based statements are planned for each call (plan_cache_mode =
-- force_custom_plan on the functions that run them): a batch may hold 3
-- pairs or 10,000, and a plan cached for one size (or for a presence table
-- of another size) can be disastrous for the other: a cached plan was once
-- measured taking 28 s for a 10,000-row call that takes 0.2 s planned for
-- itself. Planning costs a millisecond or two per call.

CREATE TABLE nodes (
    node      text PRIMARY KEY,
    kind      text NOT NULL CHECK (kind IN ('ws', 'fcgi')),
    pid       int NOT NULL,
    started   timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE presence (
    room   text NOT NULL REFERENCES rooms (name),
    member text NOT NULL,
    node   text NOT NULL REFERENCES nodes (node) ON DELETE CASCADE,
    PRIMARY KEY (room, member, node)
);
CREATE INDEX presence_node ON presence (node);

CREATE FUNCTION chat_node_up(p_node text, p_kind text, p_pid int) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO nodes (node, kind, pid) VALUES (p_node, p_kind, p_pid)
    ON CONFLICT (node) DO UPDATE SET heartbeat = now();
$$;

-- Internal (called by the functions below, not by the daemons): applies
-- presence entries, entry k saying that node p_node[k]'s row for
-- (p_room[k], p_member[k]) exists (p_online[k] true) or not (false or
-- NULL), in input order: per (node, room, member) only the last entry
-- decides. The caller holds the rows of the nodes concerned (step 1 above).
-- Creates and locks the rooms, inserts and deletes the rows, and notifies
-- one line per room whose global membership changed:
--   {"op":"presence","room":R,"online":[...],"offline":[...],"count":N}
-- online: members whose first row in the room appeared, offline: whose
-- last row went, each listed where its final run of equal entries began
-- (the order in which the one-entry-at-a-time version appended them); a
-- member back where it was before the call is not listed. The lists are
-- left out past 50 changes in the room (or if the line would not fit a
-- NOTIFY). count = distinct members of the room after the call. Lines go
-- in room name order, joined with "\n", packed into NOTIFYs of at most
-- 7900 bytes.
CREATE FUNCTION chat_presence_apply(p_node text[], p_room text[], p_member text[],
                                    p_online boolean[])
RETURNS void
LANGUAGE plpgsql
-- planned for each call: see the top of this file
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

    -- create the missing rooms, then lock them all, in name order
    INSERT INTO rooms (name) SELECT r FROM unnest(v_rooms) AS r ORDER BY r ON CONFLICT DO NOTHING;
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

-- Applies a node's local transitions (parallel arrays; p_online true =
-- member's first local connection in the room, false = its last one left),
-- in input order: several entries for one (room, member) are fine, the last
-- decides. A node not registered yet is (as kind 'ws', pid 0). Notifies one
-- presence line per room whose global membership changed (see
-- chat_presence_apply); more than 50 changes leave the name lists out.
CREATE FUNCTION chat_presence(p_node text, p_room text[], p_member text[], p_online boolean[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(p_room), 0);
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    -- hold our node row before any room (see the top of this file); a node
    -- reaped meanwhile is registered again
    LOOP
        PERFORM 1 FROM nodes WHERE node = p_node FOR KEY SHARE;
        EXIT WHEN FOUND;
        INSERT INTO nodes (node, kind, pid) VALUES (p_node, 'ws', 0) ON CONFLICT DO NOTHING;
        EXIT WHEN FOUND;
    END LOOP;
    PERFORM chat_presence_apply(array_fill(p_node, ARRAY[n]), p_room, p_member, p_online);
END;
$$;

-- Makes the database agree with a node's whole local view: its rows not in
-- (p_room, p_member) go offline, pairs without a row come online. Used when
-- a node (re)connects, so transitions lost while the database was away are
-- repaired. Does nothing (not even register the node) when they agree.
CREATE FUNCTION chat_presence_sync(p_node text, p_room text[], p_member text[]) RETURNS void
LANGUAGE plpgsql
-- planned for each call: see the top of this file
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    r text[];
    m text[];
    o boolean[];
BEGIN
    -- only this node and its reapers change its rows: hold it, then compare
    PERFORM 1 FROM nodes WHERE node = p_node FOR KEY SHARE;
    SELECT array_agg(d.room), array_agg(d.member), array_agg(d.online) INTO r, m, o
    FROM (
        SELECT coalesce(w.room, p.room) AS room, coalesce(w.member, p.member) AS member,
               w.wanted IS NOT NULL AS online
        FROM (SELECT DISTINCT x.room, x.member, true AS wanted
              FROM unnest(p_room, p_member) AS x (room, member)) w
        FULL JOIN (SELECT room, member FROM presence WHERE node = p_node) p
            ON p.room = w.room AND p.member = w.member
        WHERE w.wanted IS NULL OR p.room IS NULL
        ORDER BY 3, 1, 2
    ) d;
    IF r IS NOT NULL THEN
        PERFORM chat_presence(p_node, r, m, o);
    END IF;
END;
$$;

-- Internal: nodes going away, whose rows the caller holds FOR UPDATE. All
-- their members go offline in one pass (rooms locked once, globally in name
-- order), then the nodes are deleted.
CREATE FUNCTION chat_nodes_gone(p_nodes text[]) RETURNS void
LANGUAGE plpgsql
-- planned for each call: see the top of this file
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    nd text[];
    r  text[];
    m  text[];
BEGIN
    SELECT array_agg(node), array_agg(room), array_agg(member) INTO nd, r, m FROM (
        SELECT node, room, member FROM presence WHERE node = ANY (p_nodes)
        ORDER BY room, member, node) s;
    IF r IS NOT NULL THEN
        PERFORM chat_presence_apply(nd, r, m, array_fill(false, ARRAY[cardinality(r)]));
    END IF;
    DELETE FROM nodes WHERE node = ANY (p_nodes);
END;
$$;

-- A node going away (clean shutdown): its members go offline.
CREATE FUNCTION chat_node_down(p_node text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- waits for a chat_presence of that node in flight; then nobody else
    -- changes its rows
    PERFORM 1 FROM nodes WHERE node = p_node FOR UPDATE;
    IF FOUND THEN
        PERFORM chat_nodes_gone(ARRAY[p_node]);
    END IF;
END;
$$;

-- Beats for p_node and reaps nodes silent for longer than p_max_age, all in
-- one pass. Returns how many nodes were reaped.
CREATE FUNCTION chat_node_beat(p_node text, p_max_age interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    dead text[];
BEGIN
    UPDATE nodes SET heartbeat = now() WHERE node = p_node;
    -- SKIP LOCKED: a node whose row is held is busy (alive), or being
    -- reaped by someone else
    SELECT array_agg(d.node ORDER BY d.node) INTO dead FROM (
        SELECT node FROM nodes WHERE heartbeat < now() - p_max_age
        ORDER BY node FOR UPDATE SKIP LOCKED) d;
    IF dead IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM chat_nodes_gone(dead);
    RETURN cardinality(dead);
END;
$$;

-- Members of a room across all nodes: the first 1000 names, sorted, as a
-- JSON array, and the total count.
CREATE FUNCTION chat_members(p_room text, OUT count bigint, OUT members json)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(DISTINCT member) FROM presence WHERE room = p_room),
           coalesce((SELECT json_agg(m) FROM (SELECT DISTINCT member AS m FROM presence
                     WHERE room = p_room ORDER BY 1 LIMIT 1000) s), '[]'::json);
$$;

-- Users seen: one call per batch of connects/disconnects, not per message.
-- Rows are written in name order (two concurrent batches never deadlock);
-- a name given twice counts as authenticated if either entry is.
CREATE FUNCTION chat_users_seen(p_names text[], p_authenticated boolean[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO users AS u (name, authenticated)
        SELECT DISTINCT ON (n) n, a FROM unnest(p_names, p_authenticated) AS t (n, a)
        ORDER BY n, a DESC NULLS LAST
    ON CONFLICT (name) DO UPDATE SET last_seen = now(),
        authenticated = u.authenticated OR excluded.authenticated;
$$;
