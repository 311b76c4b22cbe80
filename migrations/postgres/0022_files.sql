-- Files (docs/files.md): content stored in the database, so every host on one
-- PostgreSQL sees every file. Content is addressed by SHA-256 per tenant and kept in
-- 1 MiB chunks: an upload writes its chunks under a fresh blob id as the bytes
-- arrive, and on completion either becomes the blob of its digest or, when the tenant
-- already holds that content, is dropped in favour of the existing one. A file names
-- a blob; deleting the last file of a blob frees its chunks. An upload that never
-- completes leaves a row in file_uploads for the sweeper.
CREATE TABLE file_blobs (
    tenant_id  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, digest)
);

CREATE TABLE file_chunks (
    tenant_id TEXT NOT NULL,
    blob_id   TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    data      BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, blob_id, seq)
);

CREATE TABLE file_uploads (
    tenant_id  TEXT NOT NULL,
    blob_id    TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, blob_id)
);

CREATE TABLE files (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    digest       TEXT NOT NULL,
    owner_id     TEXT NOT NULL,
    plugin_id    TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX files_owner ON files (tenant_id, owner_id, id);
CREATE INDEX files_digest ON files (tenant_id, digest);
