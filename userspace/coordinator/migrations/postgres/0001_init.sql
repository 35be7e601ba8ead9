-- c2wall coordinator schema for PostgreSQL, version 1. Applied once, in one
-- transaction, by the first replica that starts (see store/postgres/mod.rs).
-- Times are Unix seconds; entries and deltas are encoded c2wall.v1 messages.

CREATE TABLE records (
    key TEXT PRIMARY KEY,          -- identity and source
    entry BYTEA NOT NULL           -- c2wall.v1.Entry
);
CREATE TABLE versions (
    version BIGINT PRIMARY KEY,    -- allocated under an advisory lock: unique, no gap
    digest BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    upserts INTEGER NOT NULL,
    removals INTEGER NOT NULL,
    records_digest BYTEA
);
CREATE TABLE deltas (
    version BIGINT PRIMARY KEY,
    delta BYTEA NOT NULL           -- c2wall.v1.Delta, as sent to agents
);
CREATE TABLE changes (
    version BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    before BYTEA,
    after BYTEA,
    PRIMARY KEY (version, seq)
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    status BYTEA NOT NULL,         -- c2wall.v1.AgentStatus
    last_seen BIGINT NOT NULL
);
CREATE TABLE sightings (
    agent_id TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    entry BYTEA NOT NULL,          -- c2wall.v1.EntryKey
    ip_protocol INTEGER NOT NULL,
    cc_port INTEGER NOT NULL,
    direction INTEGER NOT NULL,
    dropped BOOLEAN NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (agent_id, subscriber, entry, ip_protocol, cc_port, direction, dropped)
);
CREATE INDEX sightings_last_seen ON sightings (last_seen);
CREATE TABLE protected (
    prefix TEXT PRIMARY KEY,
    why TEXT NOT NULL
);
CREATE TABLE audit (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    peer TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    reason TEXT NOT NULL
);
-- Never rewritten: the database itself refuses, whoever asks.
CREATE FUNCTION c2wall_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION c2wall_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION c2wall_audit_append_only();
CREATE TABLE pending (
    id BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL,            -- publish | import
    request BYTEA NOT NULL,
    summary TEXT NOT NULL,
    state TEXT NOT NULL            -- open | confirmed | rejected | superseded
);
CREATE TABLE modes (
    scope TEXT PRIMARY KEY,        -- '*' = the fleet, else an agent id
    mode TEXT NOT NULL
);
CREATE TABLE lineage (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lineage BYTEA NOT NULL,
    moved BYTEA
);
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
