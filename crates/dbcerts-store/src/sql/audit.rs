//! The audit log: appending entries, each chained by hash to the head of its own chain (a
//! project's, or the store chain for entries with no project; always under that chain's write
//! lock, so that no other writer appends to it meanwhile), and listing them in `seq` order.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::sql::BatchConn;
use crate::{AuditEntry, AuditEvent, StoreResult};

/// An `audit_log` row: the event's columns beside the entry's own.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    chain: String,
    chain_seq: i64,
    prev_seq: i64,
    at_ms: i64,
    actor: String,
    source_ip: Option<String>,
    action: String,
    project_id: Option<String>,
    target: Option<String>,
    status: Option<i64>,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            seq: row.seq,
            chain: row.chain,
            chain_seq: row.chain_seq,
            prev_seq: row.prev_seq,
            event: AuditEvent {
                at_ms: row.at_ms,
                actor: row.actor,
                source_ip: row.source_ip,
                action: row.action,
                project_id: row.project_id,
                target: row.target,
                status: row.status.map(|s| s as u16),
                details: row.details,
            },
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// The last entry of a chain: what the next one chains to.
pub(crate) struct ChainHead {
    pub seq: i64,
    pub chain_seq: i64,
    pub hash: Vec<u8>,
}

/// The heads of the chains a transaction appends to, each read once (under its lock) and then
/// moved along by the appends; [`save_heads`] records them before the commit.
#[derive(Default)]
pub(crate) struct AuditHeads(pub HashMap<String, ChainHead>);

/// A place in a chain as [`RECORDED_HEAD`] and [`LAST_CHAIN_ENTRY`] answer it: `seq`,
/// `chain_seq`, `hash`.
pub(crate) type ChainPlace = (i64, i64, Vec<u8>);

/// The head `audit_chain_heads` records for the chain `$1`.
pub(crate) const RECORDED_HEAD: &str =
    "SELECT seq, chain_seq, hash FROM audit_chain_heads WHERE chain = $1";

/// The log's last entry of the chain `$1`.
pub(crate) const LAST_CHAIN_ENTRY: &str =
    "SELECT seq, chain_seq, hash FROM audit_log WHERE chain = $1
 ORDER BY chain_seq DESC LIMIT 1";

/// Records where the chain `$1` ends: `chain_seq`, `seq`, `hash` (`$2` … `$4`).
pub(crate) const SAVE_AUDIT_HEAD: &str =
    "INSERT INTO audit_chain_heads (chain, chain_seq, seq, hash) VALUES ($1, $2, $3, $4)
 ON CONFLICT (chain) DO UPDATE SET chain_seq = excluded.chain_seq, seq = excluded.seq,
     hash = excluded.hash";

/// The INSERT of one audit entry, returning its `seq`; `$next_seq` is the backend's SQL for the
/// next `seq`, and `$chain_column` = `$chain_value` where and how it writes the entry's chain
/// (string literals). Each backend names the result `INSERT_AUDIT_ENTRY`, the one text its
/// appends run, on sqlx and on SQLite's writer thread alike. Parameters: chain, chain_seq,
/// prev_seq, at_ms, actor, source_ip, action, project_id, target, status, details, prev_hash,
/// hash.
macro_rules! insert_audit_entry_sql {
    ($next_seq:literal, $chain_column:literal = $chain_value:literal) => {
        concat!(
            "INSERT INTO audit_log (seq, ",
            $chain_column,
            ", chain_seq, prev_seq, at_ms, actor, source_ip, action, project_id,
                        target, status, details, prev_hash, hash)
 VALUES (",
            $next_seq,
            ", ",
            $chain_value,
            ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
 RETURNING seq"
        )
    };
}

/// One audit entry to insert ([`BatchConn::insert_audit_row`]).
pub(crate) struct NewAuditRow<'a> {
    pub chain: &'a str,
    pub chain_seq: i64,
    pub prev_seq: i64,
    pub event: &'a AuditEvent,
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
}

/// Records in `audit_chain_heads` where each chain in `heads` now ends. Every transaction that
/// appends calls it before it commits.
pub(crate) async fn save_heads<C: BatchConn>(conn: &mut C, heads: &AuditHeads) -> StoreResult<()> {
    for (chain, head) in &heads.0 {
        if head.chain_seq == 0 {
            continue;
        }
        conn.save_audit_head(chain, head).await?;
    }
    Ok(())
}

/// Appends `event` to its chain, after the chain's head in `heads` (read the first time by
/// [`read_head`], which may append a mismatch entry first), and moves that head to the new
/// entry. The caller's transaction must hold the chain's write lock
/// ([`WriteLock::Chain`](crate::sql::WriteLock::Chain)), so that no other writer appends to the
/// chain meanwhile.
pub(crate) async fn append<C: BatchConn>(
    conn: &mut C,
    heads: &mut AuditHeads,
    event: &AuditEvent,
) -> StoreResult<AuditEntry> {
    let chain = AuditEntry::chain_of(event);
    if !heads.0.contains_key(chain) {
        read_head(conn, heads, event).await?;
    }
    insert_entry(conn, heads, event).await
}

/// Reads where `event`'s chain ends into `heads` ([`RECORDED_HEAD`], [`LAST_CHAIN_ENTRY`],
/// then [`start_head`]), appending the mismatch entry [`start_head`] may write.
async fn read_head<C: BatchConn>(
    conn: &mut C,
    heads: &mut AuditHeads,
    event: &AuditEvent,
) -> StoreResult<()> {
    let chain = AuditEntry::chain_of(event);
    let recorded = conn.chain_place(RECORDED_HEAD, chain).await?;
    let last = conn.chain_place(LAST_CHAIN_ENTRY, chain).await?;
    let (head, note) = start_head(&recorded, &last, event);
    heads.0.insert(chain.to_owned(), head);
    if let Some(note) = note {
        insert_entry(conn, heads, &note).await?;
    }
    Ok(())
}

/// Where `event`'s chain ends, from the head recorded in `audit_chain_heads` and the log's last
/// entry of the chain, which must match. When they differ, someone changed the log or the heads
/// outside dbcerts. The append then goes on from the recorded head, so that entries cut off the
/// chain's end stay a gap that `audit verify` reports (rather than being overwritten by new
/// entries with their numbers), or from the log's last entry when that is further on (the head
/// row deleted or moved back: nothing is lost from the log). Writes are not refused, so that
/// tampering cannot stop the service; instead the `audit.chain.mismatch` entry returned beside
/// the head, saying what was found, goes onto the chain first, and a warning is logged.
fn start_head(
    recorded: &Option<ChainPlace>,
    last: &Option<ChainPlace>,
    event: &AuditEvent,
) -> (ChainHead, Option<AuditEvent>) {
    let chain = AuditEntry::chain_of(event);
    let from_recorded = match (recorded, last) {
        (Some(r), Some(l)) => r.1 >= l.1,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let base = if from_recorded { recorded } else { last };
    let head = base.clone().map_or_else(
        || ChainHead {
            seq: 0,
            chain_seq: 0,
            hash: AuditEntry::genesis(chain),
        },
        |(seq, chain_seq, hash)| ChainHead {
            seq,
            chain_seq,
            hash,
        },
    );
    if recorded == last {
        return (head, None);
    }
    let place = |p: &Option<ChainPlace>| {
        p.as_ref().map(|(seq, chain_seq, hash)| {
            serde_json::json!({"seq": seq, "chainSeq": chain_seq, "hash": AuditEntry::hex(hash)})
        })
    };
    let details = serde_json::json!({
        "recordedHead": place(recorded),
        "lastEntry": place(last),
        "chainedOnto": if from_recorded { "recordedHead" } else { "lastEntry" },
    });
    tracing::warn!(
        chain,
        %details,
        "the audit chain's recorded head does not match its last entry: the log or its \
         heads were changed outside dbcerts; run `dbcerts audit verify`"
    );
    let note = AuditEvent {
        at_ms: event.at_ms,
        actor: "dbcerts".to_owned(),
        source_ip: None,
        action: AuditEntry::CHAIN_MISMATCH.to_owned(),
        project_id: event.project_id.clone(),
        target: None,
        status: None,
        details: details.to_string(),
    };
    (head, Some(note))
}

/// The `prev_seq` of an audit row of a batch: known, or the `seq` of an earlier row of the
/// batch (by index), which its insert allocates.
#[derive(Clone, Copy)]
pub(crate) enum PrevSeq {
    Known(i64),
    Row(usize),
}

impl PrevSeq {
    /// The `seq` this is, given those of the batch's rows inserted so far.
    pub(crate) fn resolve(self, seqs: &[i64]) -> i64 {
        match self {
            PrevSeq::Known(seq) => seq,
            PrevSeq::Row(i) => seqs[i],
        }
    }
}

/// One audit entry of a batch ([`BatchConn::insert_audit_rows`]), its `seq` still to come.
pub(crate) struct BatchAuditRow<'a> {
    pub chain: &'a str,
    pub chain_seq: i64,
    pub prev: PrevSeq,
    pub event: Cow<'a, AuditEvent>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Appends `events` in their order, each to its chain, as [`append`] once each followed by
/// [`save_heads`] would, with the same entries, `seq` order, mismatch entries and heads; but
/// a step at a time for the whole batch: every chain's places, then every entry, then every
/// head (one statement each on PostgreSQL). The caller's transaction holds every chain's lock.
pub(crate) async fn append_all<C: BatchConn>(
    conn: &mut C,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut chains: Vec<&str> = Vec::new();
    for event in events {
        let chain = AuditEntry::chain_of(event);
        if !chains.contains(&chain) {
            chains.push(chain);
        }
    }
    let places = conn.chain_places(&chains).await?;
    let mut places: HashMap<&str, (Option<ChainPlace>, Option<ChainPlace>)> =
        chains.iter().copied().zip(places).collect();
    // Each chain's end as the rows are laid out: the previous row's seq, chain_seq, hash.
    let mut ends: HashMap<&str, (PrevSeq, i64, Vec<u8>)> = HashMap::new();
    let mut rows: Vec<BatchAuditRow<'_>> = Vec::new();
    for &event in events {
        let chain = AuditEntry::chain_of(event);
        let mut pending = vec![Cow::Borrowed(event)];
        if !ends.contains_key(chain) {
            let (recorded, last) = places
                .remove(chain)
                .expect("every chain's places were read");
            let (head, note) = start_head(&recorded, &last, event);
            ends.insert(chain, (PrevSeq::Known(head.seq), head.chain_seq, head.hash));
            if let Some(note) = note {
                pending.insert(0, Cow::Owned(note));
            }
        }
        let end = ends.get_mut(chain).expect("the chain's end was read");
        for event in pending {
            let chain_seq = end.1 + 1;
            let prev_hash = std::mem::take(&mut end.2);
            let hash = AuditEntry::chain_hash(&prev_hash, chain_seq, &event);
            let prev = std::mem::replace(&mut end.0, PrevSeq::Row(rows.len()));
            end.1 = chain_seq;
            end.2 = hash.clone();
            rows.push(BatchAuditRow {
                chain,
                chain_seq,
                prev,
                event,
                prev_hash,
                hash,
            });
        }
    }
    let seqs = conn.insert_audit_rows(&rows).await?;
    let heads: Vec<(&str, ChainHead)> = chains
        .iter()
        .map(|chain| {
            let (prev, chain_seq, hash) = ends.remove(chain).expect("every chain was appended to");
            let head = ChainHead {
                seq: prev.resolve(&seqs),
                chain_seq,
                hash,
            };
            (*chain, head)
        })
        .collect();
    conn.save_audit_heads(&heads).await
}

/// Inserts `event` after its chain's head in `heads` and moves the head to it.
async fn insert_entry<C: BatchConn>(
    conn: &mut C,
    heads: &mut AuditHeads,
    event: &AuditEvent,
) -> StoreResult<AuditEntry> {
    let chain = AuditEntry::chain_of(event);
    let head = heads.0.get_mut(chain).expect("the chain's head was read");
    let chain_seq = head.chain_seq + 1;
    let prev_hash = std::mem::take(&mut head.hash);
    let hash = AuditEntry::chain_hash(&prev_hash, chain_seq, event);
    let seq = conn
        .insert_audit_row(&NewAuditRow {
            chain,
            chain_seq,
            prev_seq: head.seq,
            event,
            prev_hash: &prev_hash,
            hash: &hash,
        })
        .await?;
    let prev_seq = std::mem::replace(&mut head.seq, seq);
    head.chain_seq = chain_seq;
    head.hash = hash.clone();
    Ok(AuditEntry {
        seq,
        chain: chain.to_owned(),
        chain_seq,
        prev_seq,
        event: event.clone(),
        prev_hash,
        hash,
    })
}

macro_rules! sql_audit {
    ($store:ident [$($methods:tt)*] $($rest:ident)*) => {
        use crate::sql::audit::{AuditHeads, AuditRow};

        /// [`crate::sql::audit::save_heads`] on the backend's connection.
        async fn save_audit_heads(conn: &mut DbConn, heads: &AuditHeads) -> StoreResult<()> {
            crate::sql::audit::save_heads(conn, heads).await
        }

        /// [`crate::sql::audit::append`] on the backend's connection.
        async fn append_audit_in(
            conn: &mut DbConn,
            heads: &mut AuditHeads,
            event: &AuditEvent,
        ) -> StoreResult<AuditEntry> {
            crate::sql::audit::append(conn, heads, event).await
        }

        sql_impl!($store [$($methods)*
            async fn append_audit(&self, event: &AuditEvent) -> StoreResult<AuditEntry> {
                let mut tx = self.write_tx(&[WriteLock::Chain(AuditEntry::chain_of(event))]).await?;
                let mut heads = AuditHeads::default();
                let entry = append_audit_in(&mut tx, &mut heads, event).await?;
                save_audit_heads(&mut tx, &heads).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(entry)
            }

            async fn list_audit(
                &self,
                filter: &AuditFilter,
                after_seq: i64,
                limit: u32,
            ) -> StoreResult<Vec<AuditEntry>> {
                let rows = sqlx::query_as::<_, AuditRow>(
                    "SELECT * FROM audit_log
                     WHERE seq > $1
                       AND ($2 IS NULL OR project_id = $3)
                       AND ($4 IS NULL OR actor = $5)
                       AND ($6 IS NULL OR at_ms >= $7)
                       AND ($8 IS NULL OR at_ms < $9)
                       AND ($10 IS NULL OR chain = $11)
                     ORDER BY seq LIMIT $12",
                )
                .bind(after_seq)
                .bind(&filter.project_id)
                .bind(&filter.project_id)
                .bind(&filter.actor)
                .bind(&filter.actor)
                .bind(filter.since_ms)
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(filter.until_ms)
                .bind(&filter.chain)
                .bind(&filter.chain)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(AuditEntry::from).collect())
            }

            async fn audit_chain_heads(&self) -> StoreResult<Vec<AuditChainHead>> {
                sqlx::query_as("SELECT chain, chain_seq, seq, hash FROM audit_chain_heads ORDER BY chain")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
        ] $($rest)*);
    };
}
