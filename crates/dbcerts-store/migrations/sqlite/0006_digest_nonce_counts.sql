-- The highest Digest nonce count accepted per live nonce, shared by every node, for servers
-- run with digest-replay-check = "store": a request captured on its way to one node and
-- replayed to another is refused. Written in the nodes' group commits; a row is removed once
-- its nonce has expired. (With the default, "node", each node keeps these counts in memory
-- and this table stays empty.)
CREATE TABLE digest_nonce_counts (
    nonce       TEXT PRIMARY KEY NOT NULL,
    nc          INTEGER NOT NULL,
    expires     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX digest_nonce_counts_by_expiry ON digest_nonce_counts (expires);
