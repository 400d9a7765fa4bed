-- 003_moderation: the life of a message (edit, delete), bans and kicks,
-- retention, full-text search. Everything here keeps the invariants of
-- 001 (docs/architecture.md):
--  * A change is an event in the room's order. Editing or deleting message
--    M stores a new row with the room's next seq (a "change row", with
--    `ref` = M's seq and `change` = 'edit' or 'delete') and rewrites M in
--    place, in one transaction under the room lock, like chat_post. A
--    client that resumes by cursor gets the change like any message; one
--    that reads history or a backlog later sees M as it is now.
--  * Removed text is gone from every row: a deleted message keeps its seq,
--    sender and time but no text, and so do the edit rows that carried its
--    earlier versions. No path can serve removed text again.
--  * Retention removes a prefix of a room (the oldest seqs) and records it
--    in rooms.horizon: every seq <= horizon may be gone, every seq above it
--    is there. seq never restarts and never has a hole above the horizon.
--
-- Events (rendered once, here, like every msg):
--   message, as it is now  {"op":"msg",...,"seq":10,"text":"new","ts":T,"edited":T2}
--   a deleted message      {"op":"msg",...,"seq":10,"ts":T,"deleted":true}
--   an edit of 10          {"op":"msg",...,"seq":15,"user":A,"text":"new","ts":T2,"edit":10}
--   a deletion of 10       {"op":"msg",...,"seq":16,"user":B,"ts":T3,"delete":10}
-- "user" of a change row is who made the change (the author, or the
-- moderator who deleted). Earlier versions are removed text too: an edit
-- row loses its text when its message is edited again (it then carries
-- only "edit": a client ignores it) or deleted (then "deleted":true). A
-- deleted row shows no cid either (a cid is free text a spammer can fill).
--
-- What this cannot reach: deleted text stays in the table's pages until
-- VACUUM reuses them, in the WAL and in backups taken before. Purge those
-- by the site's backup policy (docs/moderation.md).

ALTER TABLE messages
    DROP CONSTRAINT messages_text_check,
    ALTER COLUMN text DROP NOT NULL,
    ADD COLUMN ref bigint,
    ADD COLUMN change text,
    -- a change's cid: its own namespace, so that a cid used for a post and
    -- the same cid used for an edit never answer for each other
    ADD COLUMN ccid text CHECK (ccid ~ '^[ -~]{1,64}$'),
    ADD COLUMN edited timestamptz,
    ADD COLUMN deleted timestamptz,
    ADD CONSTRAINT messages_text_check
        CHECK (text IS NULL OR octet_length(text) BETWEEN 1 AND 65536),
    ADD CONSTRAINT messages_change_check
        CHECK (change IN ('edit', 'delete') AND ref IS NOT NULL AND ref < seq AND cid IS NULL
               OR change IS NULL AND ref IS NULL AND ccid IS NULL),
    -- a message loses its text only when deleted; a change row's text goes
    -- when its message is deleted or edited again
    ADD CONSTRAINT messages_text_removed_check
        CHECK (text IS NOT NULL OR deleted IS NOT NULL OR change IS NOT NULL);

-- the change rows of a message (to scrub its edits when it is deleted)
CREATE INDEX messages_ref ON messages (room, ref) WHERE ref IS NOT NULL;
CREATE UNIQUE INDEX messages_ccid ON messages (room, sender, ccid) WHERE ccid IS NOT NULL;

-- The event as clients receive it, from every column that shapes it.
CREATE FUNCTION chat_event_json(p_room text, p_seq bigint, p_sender text, p_text text,
                                p_ts timestamptz, p_cid text, p_ref bigint, p_change text,
                                p_edited timestamptz, p_deleted timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"op":"msg","room":' || to_json(p_room)::text
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

-- The same for a whole row: what the daemons' reads select
-- (SELECT seq, chat_row_json(m) FROM messages m WHERE ...).
CREATE FUNCTION chat_row_json(m messages) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chat_event_json(m.room, m.seq, m.sender, m.text, m.ts, coalesce(m.cid, m.ccid), m.ref,
                           m.change, m.edited, m.deleted);
$$;

-- chat_msg_json (001) stays for a plain new message (chat_post renders with
-- it); a NULL text is left out rather than sent as null.
CREATE OR REPLACE FUNCTION chat_msg_json(p_room text, p_seq bigint, p_sender text, p_text text,
                                         p_ts timestamptz, p_cid text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT chat_event_json(p_room, p_seq, p_sender, p_text, p_ts, p_cid, NULL, NULL, NULL, NULL);
$$;

-- ---- edit and delete --------------------------------------------------------

-- Edits (p_change 'edit', p_text the new text) or deletes (p_change
-- 'delete', p_text NULL) message p_ref of p_room, as p_actor. Rules:
--  * only a message can be edited; a deleted one, one removed by retention
--    or a change row cannot: not_found. Deleting an edit row deletes its
--    message; only when retention removed that message is the edit row
--    itself what is deleted;
--  * an edit is the author's alone; a deletion the author's or, with
--    p_moderator, anyone's: else forbidden (p_moderator NULL is false);
--  * the author may change a message only within p_window of its time (NULL:
--    any time); a moderator's deletion has no window: else too_late.
-- Idempotent like chat_post, with a cid namespace of its own: a repeated
-- (room, actor, cid) of the same change returns the first answer (dup) and
-- changes nothing; the same cid for another change is bad_request. On
-- success: the change row's seq and ts; the room's listeners get its line
-- on channel 'chat' (or a hint when over 7900 bytes), in seq order with
-- every other message. Errors come back as (err, message) with seq NULL,
-- nothing changed and no seq taken.
CREATE FUNCTION chat_change(p_room text, p_actor text, p_ref bigint, p_change text,
                            p_text text, p_cid text, p_moderator boolean, p_window interval)
RETURNS TABLE (seq bigint, ts text, dup boolean, err text, message text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_mod  boolean := coalesce(p_moderator, false);
    v_ref  bigint := p_ref;
    v_seq  bigint;
    v_ts   timestamptz;
    t      record;
    d      record;
    v_line text;
BEGIN
    IF p_change IS NULL OR p_change NOT IN ('edit', 'delete')
       OR (p_change = 'edit') <> (p_text IS NOT NULL) THEN
        RAISE EXCEPTION 'chat_change: an edit has a text, a deletion none';
    END IF;
    -- the room first, like chat_post and chat_prune: one lock order
    PERFORM 1 FROM rooms r WHERE r.name = p_room FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, false, 'not_found', 'no such message';
        RETURN;
    END IF;
    v_ts := clock_timestamp();   -- after the lock: ts never goes backwards
    SELECT m.sender, m.ts, m.change, m.ref, m.deleted INTO t FROM messages m
        WHERE m.room = p_room AND m.seq = p_ref FOR UPDATE;
    IF FOUND AND t.change = 'edit' AND p_change = 'delete' THEN
        -- deleting an edit deletes its message, while there is one
        SELECT m.sender, m.ts, m.change, m.ref, m.deleted INTO d FROM messages m
            WHERE m.room = p_room AND m.seq = t.ref FOR UPDATE;
        IF FOUND THEN
            v_ref := t.ref;
            t := d;
        END IF;
    END IF;
    IF p_cid IS NOT NULL THEN
        SELECT m.seq, m.ts, m.change, m.ref INTO d FROM messages m
            WHERE m.room = p_room AND m.sender = p_actor AND m.ccid = p_cid;
        IF FOUND AND d.change = p_change AND d.ref = v_ref THEN
            RETURN QUERY SELECT d.seq, chat_ts(d.ts), true, NULL::text, NULL::text;
            RETURN;
        ELSIF FOUND THEN
            RETURN QUERY SELECT NULL::bigint, NULL::text, false, 'bad_request',
                'this cid was used for another change';
            RETURN;
        END IF;
    END IF;
    IF t IS NULL OR t.deleted IS NOT NULL
       OR t.change IS NOT NULL AND NOT (t.change = 'edit' AND p_change = 'delete') THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, false, 'not_found', 'no such message';
        RETURN;
    END IF;
    IF t.sender <> p_actor AND NOT (p_change = 'delete' AND v_mod) THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, false, 'forbidden',
            CASE p_change WHEN 'edit' THEN 'only the author can edit a message'
                          ELSE 'only the author or a moderator can delete a message' END;
        RETURN;
    END IF;
    IF p_window IS NOT NULL AND v_ts - t.ts > p_window AND NOT (p_change = 'delete' AND v_mod) THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, false, 'too_late',
            'the time to ' || p_change || ' this message has passed';
        RETURN;
    END IF;

    UPDATE rooms SET last_seq = last_seq + 1 WHERE name = p_room RETURNING last_seq INTO v_seq;
    INSERT INTO messages (room, seq, sender, text, ccid, ts, ref, change)
        VALUES (p_room, v_seq, p_actor, p_text, p_cid, v_ts, v_ref, p_change);
    IF p_change = 'edit' THEN
        UPDATE messages SET text = p_text, edited = v_ts WHERE room = p_room AND seq = v_ref;
        -- the versions before this one are removed text now
        UPDATE messages SET text = NULL
            WHERE room = p_room AND ref = v_ref AND change = 'edit' AND seq < v_seq
              AND text IS NOT NULL;
    ELSE
        UPDATE messages SET text = NULL, deleted = v_ts WHERE room = p_room AND seq = v_ref;
        UPDATE messages SET text = NULL, deleted = v_ts
            WHERE room = p_room AND ref = v_ref AND change = 'edit' AND seq < v_seq;
    END IF;
    v_line := chat_event_json(p_room, v_seq, p_actor, p_text, v_ts, p_cid, v_ref, p_change,
                              NULL, NULL);
    IF octet_length(v_line) > 7900 THEN
        v_line := '{"op":"hint","room":' || to_json(p_room)::text || ',"seq":' || v_seq || '}';
    END IF;
    PERFORM pg_notify('chat', v_line);
    RETURN QUERY SELECT v_seq, chat_ts(v_ts), false, NULL::text, NULL::text;
END;
$$;

-- ---- bans and kicks ---------------------------------------------------------

-- A ban names a user (or a guest, "~name"), an address, or both (then
-- either matches). until NULL: until lifted. Every ban is kept, lifted or
-- expired, as the record of who banned whom, when and why.
CREATE TABLE bans (
    id        bigserial PRIMARY KEY,
    target    text CHECK (target ~ '^~?[A-Za-z0-9_.-]{1,32}$'),
    addr      inet,
    created   timestamptz NOT NULL DEFAULT now(),
    until     timestamptz,
    by        text NOT NULL CHECK (by ~ '^~?[A-Za-z0-9_.-]{1,32}$'),
    reason    text NOT NULL DEFAULT '' CHECK (octet_length(reason) <= 1000),
    lifted    timestamptz,
    lifted_by text CHECK (lifted_by ~ '^~?[A-Za-z0-9_.-]{1,32}$'),
    CHECK (target IS NOT NULL OR addr IS NOT NULL),
    CHECK (until IS NULL OR until > created)
);
CREATE INDEX bans_target ON bans (target) WHERE lifted IS NULL;
CREATE INDEX bans_addr ON bans USING gist (addr inet_ops) WHERE lifted IS NULL;

-- An address as bans compare it: an IPv4 address in IPv6 clothes
-- (::ffff:a.b.c.d, as nginx reports it with ipv6only=off) is the IPv4
-- address, and a network keeps no host bits (10.9.8.7/16 is 10.9.0.0/16).
CREATE FUNCTION chat_addr(a inet) RETURNS inet
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN b IS NULL THEN NULL
                WHEN masklen(b) < CASE family(b) WHEN 4 THEN 32 ELSE 128 END
                THEN network(b)::inet ELSE b END
    FROM (SELECT CASE WHEN family(a) = 6 AND masklen(a) >= 96 AND a << inet '::ffff:0.0.0.0/96'
                      THEN set_masklen(substring(host(a) FROM 8)::inet, masklen(a) - 96)
                      ELSE a END AS b) x;
$$;

CREATE VIEW chat_bans_active AS
    SELECT id, target, addr, created, until, by, reason FROM bans
    WHERE lifted IS NULL AND (until IS NULL OR until > now());

-- Bans p_target and/or p_addr (a host or a network) for p_for (NULL:
-- until lifted). Every process hears {"op":"ban",...} on channel
-- 'chat_admin' and closes the matching connections. Returns the ban's id.
CREATE FUNCTION chat_ban(p_target text, p_addr inet, p_for interval, p_by text, p_reason text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id    bigint;
    v_until timestamptz;
BEGIN
    INSERT INTO bans (target, addr, until, by, reason)
        VALUES (p_target, chat_addr(p_addr), now() + p_for, p_by, coalesce(p_reason, ''))
        RETURNING id, until INTO v_id, v_until;
    PERFORM pg_notify('chat_admin', json_build_object('op', 'ban', 'id', v_id, 'user', p_target,
        'addr', abbrev(chat_addr(p_addr)),
        'until', chat_ts(v_until))::text);
    RETURN v_id;
END;
$$;

-- Lifts ban p_id (false if there is no such active ban).
CREATE FUNCTION chat_unban(p_id bigint, p_by text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bans SET lifted = now(), lifted_by = p_by WHERE id = p_id AND lifted IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('chat_admin', json_build_object('op', 'unban', 'id', p_id)::text);
    RETURN true;
END;
$$;

-- The active ban that stops p_user (may be NULL) from p_addr (may be
-- NULL), if any: what a daemon asks before it lets a connection join or
-- send, and what it answers with ("banned until ...: reason").
CREATE FUNCTION chat_ban_check(p_user text, p_addr inet)
RETURNS TABLE (id bigint, until text, reason text)
LANGUAGE sql STABLE AS $$
    SELECT b.id, chat_ts(b.until), b.reason FROM chat_bans_active b
    WHERE b.target = p_user OR b.addr >>= chat_addr(p_addr)
    ORDER BY b.until DESC NULLS FIRST
    LIMIT 1;
$$;

-- Ends every connection of p_user on every process and host, now, without
-- a ban (they may come back: revoke their access in nginx first).
CREATE FUNCTION chat_kick(p_user text, p_by text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('chat_admin', json_build_object('op', 'kick', 'user', p_user, 'by', p_by)::text);
$$;

-- ---- retention ---------------------------------------------------------------

-- How long messages are kept, by room pattern (a name, "prefix*", or "*").
-- The most specific pattern of a room applies: its exact name, else the
-- longest matching prefix, else "*". A room no pattern matches is kept
-- forever.
CREATE TABLE retention (
    pattern text PRIMARY KEY CHECK (pattern ~ '^(\*|[a-z0-9][a-z0-9_-]{0,63}\*?)$'),
    keep    interval NOT NULL CHECK (keep > interval '0')
);

-- every seq <= horizon may have been removed by retention; every seq above
-- it that was ever assigned is still there
ALTER TABLE rooms ADD COLUMN horizon bigint NOT NULL DEFAULT 0 CHECK (horizon >= 0);

CREATE FUNCTION chat_retention_for(p_room text) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT keep FROM retention
    WHERE pattern = p_room
       OR pattern LIKE '%*' AND left(p_room, length(pattern) - 1) = left(pattern, -1)
    ORDER BY pattern = p_room DESC, length(pattern) DESC
    LIMIT 1;
$$;

-- Removes messages older than their room's retention, oldest first, in
-- transactions of at most p_batch rows each, committed one by one, so a
-- prune of millions holds no lock for long: each batch takes the room lock
-- first (the order of chat_post and chat_change: no deadlock), so a post to
-- that room waits at most for one batch. After each batch it rests as long
-- as the batch took (p_rest = 1: deleting at most half the time), so that
-- its writes do not crowd the posts' commits. The horizon only grows, also
-- when two prunes overlap. Run it alone, outside a transaction (it
-- commits), from cron or a timer: CALL chat_prune(); afterwards `removed`
-- says how many rows went.
CREATE PROCEDURE chat_prune(INOUT removed bigint DEFAULT 0, p_batch int DEFAULT 2000,
                            p_rest float8 DEFAULT 1)
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
END;
$$;

-- ---- search ------------------------------------------------------------------

-- The text of plain messages, as they are now, indexed with the 'simple'
-- configuration: words lower-cased, no stemming and no stop words, the
-- same for every language a chat mixes. (A one-language site can change
-- it in a later migration: the column's expression and chat_search's
-- websearch_to_tsquery must name the same configuration.)
-- (Adding a stored column rewrites the table, and the index is built in
-- the migration's transaction: posts wait meanwhile, about 7 s per million
-- messages here. Migrate a large history in a quiet hour.)
ALTER TABLE messages ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (CASE WHEN change IS NULL AND text IS NOT NULL
                              THEN to_tsvector('simple'::regconfig, text) END) STORED;
-- fastupdate off: with a pending list, the post that finds it full merges
-- it into the index while the room waits (a send's ack took a second);
-- chat messages have few words, so adding them at once costs little
CREATE INDEX messages_tsv ON messages USING gin (tsv) WITH (fastupdate = off);

-- Messages of p_room whose current text matches p_query (web-search
-- syntax: words, "a phrase", -not, or; never a syntax error), newest
-- first, p_limit (1..100) of them below seq p_before (NULL: from the
-- newest). Deleted messages and change rows never match; a query with no
-- word to look for (empty, or only -words) matches nothing.
-- Bounded work whatever the words: the newest 20,000 messages below
-- p_before are read backwards first (a word common in this room fills the
-- page there); only if the page is not full is the word index asked for
-- the older ones (a word rare in this room, however common elsewhere).
CREATE FUNCTION chat_search(p_room text, p_query text, p_before bigint, p_limit int)
RETURNS TABLE (seq bigint, line text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    q      tsquery := websearch_to_tsquery('simple'::regconfig, coalesce(p_query, ''));
    v_lim  int := least(greatest(coalesce(p_limit, 50), 1), 100);
    v_top  bigint;
    v_n    int;
BEGIN
    IF querytree(q) = 'T' OR querytree(q) = '' THEN
        RETURN;
    END IF;
    SELECT least(coalesce(p_before, r.last_seq + 1), r.last_seq + 1) INTO v_top
        FROM rooms r WHERE r.name = p_room;
    IF v_top IS NULL THEN
        RETURN;
    END IF;
    -- "coalesce": not the word index (a common word's whole posting list),
    -- but the newest rows backwards, at most 20,000 of them
    RETURN QUERY
        SELECT m.seq, chat_row_json(m) FROM messages m
        WHERE m.room = p_room AND m.seq < v_top AND m.seq >= v_top - 20000
          AND coalesce(m.tsv, ''::tsvector) @@ q
        ORDER BY m.seq DESC LIMIT v_lim;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n < v_lim AND v_top - 20000 > 1 THEN
        -- "+ 0": sorted after the word index found them, not scanned backwards
        RETURN QUERY
            SELECT m.seq, chat_row_json(m) FROM messages m
            WHERE m.room = p_room AND m.seq < v_top - 20000 AND m.tsv @@ q
            ORDER BY m.seq + 0 DESC LIMIT v_lim - v_n;
    END IF;
END;
$$;
