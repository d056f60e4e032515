//! Verifying the audit log's hash chains through any [`Store`]: what `dbcerts audit verify`
//! reports and the conformance suite asserts.
//!
//! The log is several chains (a project's, the store chain); see [`AuditEntry`]. Each is
//! checked link by link from its own genesis: its entries are numbered 1, 2, 3, … in it, each
//! one's hash matches its contents, each chains to the one before it (the first to the chain's
//! genesis), and each names the previous entry's `seq`; and it must reach the head the store
//! recorded for it ([`Store::audit_chain_heads`]), so that a chain cut short is found too.

use std::collections::BTreeMap;

use crate::{AuditEntry, AuditFilter, Store, StoreResult};

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
}

/// The outcome of [`verify_audit_chains`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every chain holds; the chains in the order of their names (the store chain first).
    Intact {
        entries: u64,
        chains: Vec<ChainSummary>,
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
}

impl Walk {
    fn start(chain: &str) -> Walk {
        Walk {
            chain_seq: 0,
            seq: 0,
            hash: AuditEntry::genesis(chain),
            entries: 0,
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
pub async fn verify_audit_chains(store: &dyn Store) -> StoreResult<ChainCheck> {
    // Read first: every entry up to these heads has committed before the walk starts.
    let heads = store.audit_chain_heads().await?;
    let mut walks: BTreeMap<String, Walk> = BTreeMap::new();
    let mut suspect: Vec<String> = Vec::new();
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
                suspect.push(chain);
            }
        }
    }
    for chain in suspect {
        match verify_one_chain(store, &chain).await? {
            Ok(walk) => {
                walks.insert(chain, walk);
            }
            Err((seq, reason)) => return Ok(ChainCheck::Broken { seq, chain, reason }),
        }
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
    let entries = walks.values().map(|w| w.entries).sum();
    let chains = walks
        .into_iter()
        .map(|(chain, w)| ChainSummary {
            chain,
            entries: w.entries,
            last_seq: w.seq,
        })
        .collect();
    Ok(ChainCheck::Intact { entries, chains })
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
