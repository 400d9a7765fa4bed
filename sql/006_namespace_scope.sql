-- 006_namespace_scope: what a site's moderators and retention patterns
-- reach stays in its namespace (issue 12, point 13; the review of 005).
--
--  * Retention: a pattern without ':' (other than "*") matched the start of
--    every stored name, so "gu*", meant for the shared namespace's rooms,
--    also pruned every room of a namespace "guests-site". Now a pattern
--    applies to the rooms of its own namespace: "support-*" to the shared
--    namespace's, "customer-b:support-*" to customer-b's; "*" still to
--    every room of every namespace.
--  * Bans get a namespace: ns NULL is every namespace (chatctl's bans, and
--    every ban made before this migration); '' the shared namespace; a name
--    that namespace. A moderator's ban (chat_ban with p_ns: the location's
--    $chat_namespace, '' when none) stops users of its own namespace only;
--    a moderator lifts and lists the bans of its namespace (the shared
--    namespace's moderators also the NULL ones, as before). So one site's
--    moderator can neither shut out another site's users (guests choose
--    their names: "~bob" is anyone) nor read another site's bans.

CREATE OR REPLACE FUNCTION chat_retention_for(p_room text) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT keep FROM retention
    WHERE (pattern = p_room
           OR pattern LIKE '%*' AND left(p_room, length(pattern) - 1) = left(pattern, -1))
      AND (pattern = '*' OR (strpos(pattern, ':') > 0) = (strpos(p_room, ':') > 0))
    ORDER BY pattern = p_room DESC, length(pattern) DESC
    LIMIT 1;
$$;

ALTER TABLE bans ADD COLUMN ns text CHECK (ns ~ '^([a-z0-9][a-z0-9_-]{0,31})?$');

CREATE OR REPLACE VIEW chat_bans_active AS
    SELECT id, target, addr, created, until, by, reason, ns FROM bans
    WHERE lifted IS NULL AND (until IS NULL OR until > now());

-- Whether a ban of namespace b_ns is one a moderator of namespace p_ns
-- lifts and lists.
CREATE FUNCTION chat_ban_ours(b_ns text, p_ns text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT b_ns = p_ns OR (p_ns = '' AND b_ns IS NULL);
$$;

-- chat_ban (003) in namespace p_ns ('' the shared one, NULL every one).
CREATE FUNCTION chat_ban(p_target text, p_addr inet, p_for interval, p_by text, p_reason text,
                         p_ns text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id    bigint;
    v_until timestamptz;
BEGIN
    INSERT INTO bans (target, addr, until, by, reason, ns)
        VALUES (p_target, chat_addr(p_addr), now() + p_for, p_by, coalesce(p_reason, ''), p_ns)
        RETURNING id, until INTO v_id, v_until;
    PERFORM pg_notify('chat_admin', json_build_object('op', 'ban', 'id', v_id, 'user', p_target,
        'addr', abbrev(chat_addr(p_addr)),
        'until', chat_ts(v_until))::text);
    RETURN v_id;
END;
$$;

-- chatctl's (every namespace) is the one above with ns NULL.
CREATE OR REPLACE FUNCTION chat_ban(p_target text, p_addr inet, p_for interval, p_by text,
                                    p_reason text)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT chat_ban(p_target, p_addr, p_for, p_by, p_reason, NULL);
$$;

-- A moderator of namespace p_ns lifts ban p_id when it is one of theirs.
CREATE FUNCTION chat_unban(p_id bigint, p_by text, p_ns text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bans SET lifted = now(), lifted_by = p_by
        WHERE id = p_id AND lifted IS NULL AND chat_ban_ours(ns, p_ns);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('chat_admin', json_build_object('op', 'unban', 'id', p_id)::text);
    RETURN true;
END;
$$;
