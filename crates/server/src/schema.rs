//! Every database schema of the server, as the migrations `db::Pool`
//! applies in order (a database records how many it has run): one place
//! to read what is stored, and no module that must import another's
//! tables.

/// The accounts database (`accounts.sqlite`).
pub(crate) const ACCOUNTS: &[&str] = &["CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash BLOB NOT NULL UNIQUE,
        created_unix INTEGER NOT NULL
    ) STRICT;"];

/// One user's database (`users/{id}.sqlite`), migration by migration.
pub(crate) const USER: &[&str] = &[
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    -- Latest version of each document; content NULL = deleted.
    CREATE TABLE docs (
        id TEXT PRIMARY KEY,
        rev TEXT NOT NULL,
        content BLOB,
        gen INTEGER NOT NULL,
        source TEXT NOT NULL
    ) STRICT;
    CREATE INDEX docs_by_gen ON docs (gen);
    -- Every change: its generation and random transaction id.
    CREATE TABLE log (gen INTEGER PRIMARY KEY, txid TEXT NOT NULL, doc_id TEXT NOT NULL) STRICT;
    -- Last generation and transaction id received from each client replica.
    CREATE TABLE replicas (id TEXT PRIMARY KEY, gen INTEGER NOT NULL, txid TEXT NOT NULL) STRICT;
    -- The user's secret, sealed by the client with the passphrase.
    CREATE TABLE secret (one INTEGER PRIMARY KEY CHECK (one = 1), sealed BLOB NOT NULL) STRICT;
",
    BLOBS,
    BLOB_USAGE,
    BLOB_FILE,
];

/// Migration 2. Blobs (`blobs.rs`) and the mail key.
const BLOBS: &str = "
    CREATE TABLE blobs (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        size INTEGER NOT NULL,
        flag TEXT,
        created_ms INTEGER NOT NULL,
        flagged_ms INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
    ) STRICT;
    CREATE INDEX blobs_by_date ON blobs (namespace, created_ms);
    -- The age recipient published to mail exchangers, and its identity
    -- encrypted by the client.
    CREATE TABLE mail_key (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        recipient TEXT NOT NULL,
        sealed_identity BLOB NOT NULL
    ) STRICT;
";

/// Migration 3. Small blobs kept in the row (`data`; NULL: in a file), and
/// the bytes in use, kept by triggers in the transaction that changes
/// `blobs`, so checking the quota does not sum the whole table on every
/// upload (which made uploads slower as blobs accumulated).
const BLOB_USAGE: &str = "
    ALTER TABLE blobs ADD COLUMN data BLOB;
    CREATE TABLE blob_usage (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        bytes INTEGER NOT NULL
    ) STRICT;
    INSERT INTO blob_usage SELECT 1, COALESCE(SUM(size), 0) FROM blobs;
    CREATE TRIGGER blob_usage_insert AFTER INSERT ON blobs BEGIN
        UPDATE blob_usage SET bytes = bytes + NEW.size;
    END;
    CREATE TRIGGER blob_usage_delete AFTER DELETE ON blobs BEGIN
        UPDATE blob_usage SET bytes = bytes - OLD.size;
    END;
    CREATE TRIGGER blob_usage_update AFTER UPDATE OF size ON blobs BEGIN
        UPDATE blob_usage SET bytes = bytes - OLD.size + NEW.size;
    END;
";

/// Migration 4. The name of a blob's file (`{id}@{random}`), new for
/// every upload: a DELETE unlinks the file of the version it deleted, so
/// an upload of the same id that commits in between keeps its own file
/// (with one name per id, that unlink once removed an acknowledged
/// upload's bytes). NULL with `data` NULL: a file named `{id}` (written
/// before this migration). `@` is outside the id syntax: no clash.
const BLOB_FILE: &str = "
    ALTER TABLE blobs ADD COLUMN file TEXT;
";
