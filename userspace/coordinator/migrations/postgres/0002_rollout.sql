-- The staged rollout's state: stage ceilings, when each stage reached each
-- version, a freeze. One row, JSON, written by the replica that leads and
-- read by every replica's stream server (NOTIFY 'rollout').
CREATE TABLE rollout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL
);
