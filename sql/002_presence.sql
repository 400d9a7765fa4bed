-- 002_presence: who is in which room, across every daemon process.
--
-- Each daemon process is a node. A node keeps, per room, how many of its
-- own connections (or recent long-polls) each member has, and tells the
-- database only of local transitions (first connection in, last one out),
-- batched once a second. A member is online in a room while any node has a
-- presence row for it. Global transitions are announced on channel 'chat'
-- as the presence event clients receive. A node that dies stops beating;
-- another node reaps it and its members go offline.

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

-- Applies a node's local transitions (parallel arrays; p_online true =
-- member's first local connection in the room, false = its last one left).
-- Rooms are locked in name order so that concurrent nodes see each other's
-- rows. Notifies one presence event per room whose global membership
-- changed; more than 50 changes leave the name lists out.
CREATE FUNCTION chat_presence(p_node text, p_room text[], p_member text[], p_online boolean[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r        text;
    k        int;
    n        int := coalesce(cardinality(p_room), 0);
    ons      text[];
    offs     text[];
    hit      int;
    cnt      bigint;
    line     text;
    payload  text := '';
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    INSERT INTO nodes (node, kind, pid) VALUES (p_node, 'ws', 0) ON CONFLICT DO NOTHING;
    INSERT INTO rooms (name)
        SELECT DISTINCT x FROM unnest(p_room) AS x ORDER BY x ON CONFLICT DO NOTHING;
    FOR r IN SELECT DISTINCT x FROM unnest(p_room) AS x ORDER BY x LOOP
        PERFORM 1 FROM rooms WHERE name = r FOR UPDATE;
        ons := '{}';
        offs := '{}';
        FOR k IN 1 .. n LOOP
            CONTINUE WHEN p_room[k] <> r;
            IF p_online[k] THEN
                INSERT INTO presence (room, member, node) VALUES (r, p_member[k], p_node)
                    ON CONFLICT DO NOTHING;
                GET DIAGNOSTICS hit = ROW_COUNT;
                IF hit > 0 AND NOT EXISTS (SELECT 1 FROM presence WHERE room = r
                        AND member = p_member[k] AND node <> p_node) THEN
                    IF p_member[k] = ANY (offs) THEN
                        offs := array_remove(offs, p_member[k]);
                    ELSE
                        ons := array_append(ons, p_member[k]);
                    END IF;
                END IF;
            ELSE
                DELETE FROM presence WHERE room = r AND member = p_member[k] AND node = p_node;
                GET DIAGNOSTICS hit = ROW_COUNT;
                IF hit > 0 AND NOT EXISTS (SELECT 1 FROM presence WHERE room = r
                        AND member = p_member[k]) THEN
                    IF p_member[k] = ANY (ons) THEN
                        ons := array_remove(ons, p_member[k]);
                    ELSE
                        offs := array_append(offs, p_member[k]);
                    END IF;
                END IF;
            END IF;
        END LOOP;
        CONTINUE WHEN cardinality(ons) = 0 AND cardinality(offs) = 0;
        SELECT count(DISTINCT member) INTO cnt FROM presence WHERE room = r;
        line := '{"op":"presence","room":' || to_json(r)::text;
        IF cardinality(ons) + cardinality(offs) <= 50 THEN
            line := line || ',"online":' || array_to_json(ons)::text
                         || ',"offline":' || array_to_json(offs)::text;
        END IF;
        line := line || ',"count":' || cnt || '}';
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

-- Makes the database agree with a node's whole local view: its rows not in
-- (p_room, p_member) go offline, pairs without a row come online. Used when
-- a node (re)connects, so transitions lost while the database was away are
-- repaired.
CREATE FUNCTION chat_presence_sync(p_node text, p_room text[], p_member text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r text[];
    m text[];
    o boolean[];
BEGIN
    SELECT array_agg(d.room), array_agg(d.member), array_agg(d.online) INTO r, m, o FROM (
        SELECT p.room, p.member, false AS online FROM presence p
            WHERE p.node = p_node AND NOT EXISTS (
                SELECT 1 FROM unnest(p_room, p_member) AS w (room, member)
                WHERE w.room = p.room AND w.member = p.member)
        UNION ALL
        SELECT DISTINCT w.room, w.member, true FROM unnest(p_room, p_member) AS w (room, member)
            WHERE NOT EXISTS (SELECT 1 FROM presence p
                WHERE p.node = p_node AND p.room = w.room AND p.member = w.member)
    ) d;
    IF r IS NOT NULL THEN
        PERFORM chat_presence(p_node, r, m, o);
    END IF;
END;
$$;

-- A node going away (clean shutdown, or reaped): its members go offline.
CREATE FUNCTION chat_node_down(p_node text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rooms_  text[];
    members text[];
BEGIN
    SELECT array_agg(room ORDER BY room), array_agg(member ORDER BY room)
        INTO rooms_, members FROM presence WHERE node = p_node;
    IF rooms_ IS NOT NULL THEN
        PERFORM chat_presence(p_node, rooms_, members,
                              array_fill(false, ARRAY[cardinality(rooms_)]));
    END IF;
    DELETE FROM nodes WHERE node = p_node;
END;
$$;

-- Beats for p_node and reaps nodes silent for longer than p_max_age.
-- Returns how many nodes were reaped.
CREATE FUNCTION chat_node_beat(p_node text, p_max_age interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    dead text;
    n    int := 0;
BEGIN
    UPDATE nodes SET heartbeat = now() WHERE node = p_node;
    FOR dead IN SELECT node FROM nodes WHERE heartbeat < now() - p_max_age
                ORDER BY node FOR UPDATE SKIP LOCKED LOOP
        PERFORM chat_node_down(dead);
        n := n + 1;
    END LOOP;
    RETURN n;
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
CREATE FUNCTION chat_users_seen(p_names text[], p_authenticated boolean[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO users AS u (name, authenticated)
        SELECT DISTINCT ON (n) n, a FROM unnest(p_names, p_authenticated) AS t (n, a)
    ON CONFLICT (name) DO UPDATE SET last_seen = now(),
        authenticated = u.authenticated OR excluded.authenticated;
$$;
