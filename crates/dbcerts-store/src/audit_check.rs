//! Verifying the audit log's hash chains through any [`Store`]: what `dbcerts audit verify`
//! reports and the conformance suite asserts.
//!
//! The log is several chains (a project's, the store chain); see [`AuditEntry`]. Each is
//! checked link by link from its own genesis: its entries are numbered 1, 2, 3, … in it, each
//! one's hash matches its contents, each chains to the one before it (the first to the chain's
//! genesis), and each names the previous entry's `seq`; and it must reach the head the store
//! recorded for it ([`Store::audit_chain_heads`]), so that a chain cut short is found too; and
//! every chain in the log must have a recorded head. A whole chain deleted together with its
//! head row leaves no trace in the log by itself: the latest checkpoint in the store chain
//! ([`Checkpoint`], appended by `dbcerts audit verify --checkpoint`) records where every chain
//! ended when it was written, and each chain must still reach that place with the same hash.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{AuditEntry, AuditEvent, AuditFilter, Store, StoreResult};

/// Entries read per store call while walking the log.
const BATCH: u32 = 1000;

/// One intact chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// A project id, or empty for the store chain.
    pub chain: String,
    pub entries: u64,
    /// The `seq` of the chain's last entry.
    pub last_seq: i64,
    /// The hash of the chain's last entry.
    pub last_hash: Vec<u8>,
}

/// Where every chain ended at one verified moment, as a store-chain entry with the action
/// [`AuditEntry::CHECKPOINT`] records it (its details, as JSON). A later verification requires
/// every chain the latest checkpoint names to still reach that place with that hash, so that
/// deleting a chain together with its recorded head, or cutting both back, is found; rewriting
/// them to match would also mean rewriting the store chain from the checkpoint on, which the
/// checkpoint's own hash, kept outside the database, exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub chains: Vec<CheckpointChain>,
    /// [`root_digest`] over `chains`, lowercase hex.
    pub root: String,
}

/// One chain's end in a [`Checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointChain {
    pub chain: String,
    pub chain_seq: i64,
    pub seq: i64,
    /// Lowercase hex.
    pub hash: String,
}

/// One SHA-256 over every chain's end (name, number of entries, last hash), in the order of
/// the chains' names: what `dbcerts audit verify` prints as the root digest, so that an
/// operator can keep one value outside the database that pins the whole log as verified.
pub fn root_digest(chains: &[ChainSummary]) -> Vec<u8> {
    use sha2::Digest;
    let mut sorted: Vec<&ChainSummary> = chains.iter().collect();
    sorted.sort_by(|a, b| a.chain.cmp(&b.chain));
    let mut h = sha2::Sha256::new();
    h.update(b"dbcerts-audit-root-v1\0");
    for c in sorted {
        h.update((c.chain.len() as u64).to_be_bytes());
        h.update(c.chain.as_bytes());
        h.update((c.entries as i64).to_be_bytes());
        h.update(&c.last_hash);
    }
    h.finalize().to_vec()
}

/// The store-chain event that records `chains` (an intact verification's) as a checkpoint.
pub fn checkpoint_event(chains: &[ChainSummary], at_ms: i64, actor: &str) -> AuditEvent {
    let checkpoint = Checkpoint {
        chains: chains
            .iter()
            .map(|c| CheckpointChain {
                chain: c.chain.clone(),
                chain_seq: c.entries as i64,
                seq: c.last_seq,
                hash: AuditEntry::hex(&c.last_hash),
            })
            .collect(),
        root: AuditEntry::hex(&root_digest(chains)),
    };
    AuditEvent {
        at_ms,
        actor: actor.to_owned(),
        source_ip: None,
        action: AuditEntry::CHECKPOINT.to_owned(),
        project_id: None,
        target: None,
        status: None,
        details: serde_json::to_string(&checkpoint).expect("a checkpoint serializes"),
    }
}

/// The outcome of [`verify_audit_chains`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every chain holds; the chains in the order of their names (the store chain first), and
    /// the `seq` of the latest checkpoint they were held to, if any.
    Intact {
        entries: u64,
        chains: Vec<ChainSummary>,
        checkpoint: Option<i64>,
    },
    /// The first broken link found: the `seq` of the entry at fault (for a missing entry, the
    /// `seq` its successor names), its chain, and why.
    Broken {
        seq: i64,
        chain: String,
        reason: &'static str,
    },
}

/// Where a chain's walk has got to.
struct Walk {
    chain_seq: i64,
    seq: i64,
    hash: Vec<u8>,
    entries: u64,
    /// In the store chain: the latest checkpoint passed, with its `seq`.
    checkpoint: Option<(i64, Checkpoint)>,
}

impl Walk {
    fn start(chain: &str) -> Walk {
        Walk {
            chain_seq: 0,
            seq: 0,
            hash: AuditEntry::genesis(chain),
            entries: 0,
            checkpoint: None,
        }
    }

    /// Checks that `e` is the chain's next entry and moves on to it; otherwise the broken link
    /// (the `seq` at fault and why).
    fn step(&mut self, e: AuditEntry) -> Result<(), (i64, &'static str)> {
        if e.chain_seq > self.chain_seq + 1 {
            return Err((e.prev_seq, "entry missing (sequence gap)"));
        }
        if e.chain_seq != self.chain_seq + 1 || e.prev_seq != self.seq || e.prev_hash != self.hash {
            return Err((e.seq, "does not chain to the previous entry"));
        }
        if !e.is_intact() {
            return Err((e.seq, "contents do not match the entry's hash"));
        }
        if e.event.action == AuditEntry::CHAIN_MISMATCH {
            return Err((
                e.seq,
                "a store found the chain's recorded head and its last entry differing here \
                 (changed outside dbcerts; the entry's details say how)",
            ));
        }
        if e.chain.is_empty() && e.event.action == AuditEntry::CHECKPOINT {
            let checkpoint = serde_json::from_str(&e.event.details)
                .map_err(|_| (e.seq, "a checkpoint whose details cannot be read"))?;
            self.checkpoint = Some((e.seq, checkpoint));
        }
        self.chain_seq = e.chain_seq;
        self.seq = e.seq;
        self.hash = e.hash;
        self.entries += 1;
        Ok(())
    }
}

/// Walks the whole log in `seq` order, checking every chain as its entries come.
///
/// On PostgreSQL an entry can commit after one with a higher `seq` of another chain, so a walk
/// that runs while nodes append may pass a place before its entry is there, and then see the
/// chain's next entry without it. A chain that looks broken is therefore walked again on its
/// own ([`AuditFilter::chain`]), where entries commit in order; only that walk's verdict counts.
///
/// The recorded heads are read before the walk (every entry up to them has committed, so each
/// chain must reach its head) and again after it (a chain first written during the walk has
/// its head by then): a chain in the log with a head in neither read lost it.
pub async fn verify_audit_chains(store: &dyn Store) -> StoreResult<ChainCheck> {
    let heads = store.audit_chain_heads().await?;
    let mut walks: BTreeMap<String, Walk> = BTreeMap::new();
    let mut suspect: HashSet<String> = HashSet::new();
    let mut after = 0i64;
    loop {
        let batch = store
            .list_audit(&AuditFilter::default(), after, BATCH)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for e in batch {
            if suspect.contains(&e.chain) {
                continue;
            }
            let chain = e.chain.clone();
            let walk = walks
                .entry(chain.clone())
                .or_insert_with(|| Walk::start(&chain));
            if walk.step(e).is_err() {
                suspect.insert(chain);
            }
        }
    }
    let mut suspect: Vec<String> = suspect.into_iter().collect();
    suspect.sort();
    for chain in suspect {
        match verify_one_chain(store, &chain).await? {
            Ok(walk) => {
                walks.insert(chain, walk);
            }
            Err((seq, reason)) => return Ok(ChainCheck::Broken { seq, chain, reason }),
        }
    }
    let heads_after = store.audit_chain_heads().await?;
    let recorded: HashSet<&str> = heads
        .iter()
        .chain(&heads_after)
        .map(|h| h.chain.as_str())
        .collect();
    if let Some((chain, walk)) = walks.iter().find(|(c, _)| !recorded.contains(c.as_str())) {
        return Ok(ChainCheck::Broken {
            seq: walk.seq,
            chain: chain.clone(),
            reason: "the chain has no recorded head (its head row was deleted)",
        });
    }
    for head in heads {
        let reached = walks.get(&head.chain).map_or(0, |w| w.chain_seq);
        if reached < head.chain_seq {
            return Ok(ChainCheck::Broken {
                seq: head.seq,
                chain: head.chain,
                reason: "entry missing (the chain ends before its recorded head)",
            });
        }
        if reached == head.chain_seq {
            let walk = &walks[&head.chain];
            if walk.seq != head.seq || walk.hash != head.hash {
                return Ok(ChainCheck::Broken {
                    seq: walk.seq,
                    chain: head.chain,
                    reason: "does not match the chain's recorded head",
                });
            }
        }
    }
    let checkpoint = walks.get("").and_then(|w| w.checkpoint.clone());
    if let Some((_, checkpoint)) = &checkpoint
        && let Some(broken) = check_checkpoint(store, &walks, checkpoint).await?
    {
        return Ok(broken);
    }
    let entries = walks.values().map(|w| w.entries).sum();
    let chains = walks
        .into_iter()
        .map(|(chain, w)| ChainSummary {
            chain,
            entries: w.entries,
            last_seq: w.seq,
            last_hash: w.hash,
        })
        .collect();
    Ok(ChainCheck::Intact {
        entries,
        chains,
        checkpoint: checkpoint.map(|(seq, _)| seq),
    })
}

/// Holds the walked chains to `checkpoint`: each chain it names must reach the place it
/// recorded, and the entry there must be the one it recorded.
async fn check_checkpoint(
    store: &dyn Store,
    walks: &BTreeMap<String, Walk>,
    checkpoint: &Checkpoint,
) -> StoreResult<Option<ChainCheck>> {
    for c in &checkpoint.chains {
        let broken = |reason| {
            Some(ChainCheck::Broken {
                seq: c.seq,
                chain: c.chain.clone(),
                reason,
            })
        };
        let walk = walks.get(&c.chain);
        let reached = walk.map_or(0, |w| w.chain_seq);
        if reached < c.chain_seq {
            return Ok(broken(
                "entry missing (the chain ends before the place the latest checkpoint recorded)",
            ));
        }
        let found = match walk {
            Some(w) if w.chain_seq == c.chain_seq => Some((w.seq, w.chain_seq, w.hash.clone())),
            _ => {
                let filter = AuditFilter {
                    chain: Some(c.chain.clone()),
                    ..AuditFilter::default()
                };
                store
                    .list_audit(&filter, c.seq - 1, 1)
                    .await?
                    .into_iter()
                    .next()
                    .map(|e| (e.seq, e.chain_seq, e.hash))
            }
        };
        let matches = found.is_some_and(|(seq, chain_seq, hash)| {
            seq == c.seq && chain_seq == c.chain_seq && AuditEntry::hex(&hash) == c.hash
        });
        if !matches {
            return Ok(broken(
                "does not match the latest checkpoint's record of it",
            ));
        }
    }
    Ok(None)
}

/// Walks one chain alone, from its genesis.
async fn verify_one_chain(
    store: &dyn Store,
    chain: &str,
) -> StoreResult<Result<Walk, (i64, &'static str)>> {
    let filter = AuditFilter {
        chain: Some(chain.to_owned()),
        ..AuditFilter::default()
    };
    let mut walk = Walk::start(chain);
    loop {
        let batch = store.list_audit(&filter, walk.seq, BATCH).await?;
        if batch.is_empty() {
            return Ok(Ok(walk));
        }
        for e in batch {
            if let Err(broken) = walk.step(e) {
                return Ok(Err(broken));
            }
        }
    }
}
