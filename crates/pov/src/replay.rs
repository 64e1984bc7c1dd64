//! `pov replay har`: a HAR of the selected sessions. Two passes over the
//! captures: the first finds the sessions (the user stage) and which
//! transactions they hold; the second keeps those transactions whole
//! (headers and bodies) and writes them as HAR 1.2 (pov-replay).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pov_capture::http::{HttpTransaction, TxSink};
use pov_replay::{HarEntry, HarPage};

use crate::users::SessionTap;

/// Which sessions to replay.
#[derive(Clone, Debug)]
pub enum Selector {
    /// Every session of a user (pseudonym, or raw key with masking off).
    User(String),
    /// One session (`user/index`).
    Session(String),
    /// Every session with a noticed failure.
    Failed,
}

/// What the first pass found: the transactions to keep and their pages.
#[derive(Debug, Default)]
pub struct Selection {
    /// (connection, depth) -> page id.
    pub txs: HashMap<(u64, u32), Option<String>>,
    /// Page views, in order.
    pub pages: Vec<HarPage>,
    /// Sessions selected.
    pub sessions: u64,
}

/// A tap for the user stage that fills a shared [`Selection`].
pub fn selecting_tap(sel: Selector, into: Rc<RefCell<Selection>>) -> SessionTap {
    Box::new(move |s, c, user, sid| {
        let chosen = match &sel {
            Selector::User(u) => u == user,
            Selector::Session(x) => x == sid,
            Selector::Failed => c.failures.iter().any(|f| f.severity.noticed()),
        };
        if !chosen {
            return;
        }
        let mut out = into.borrow_mut();
        out.sessions += 1;
        let mut in_page = vec![None; s.txs.len()];
        for p in &s.pages {
            let id = format!("page_{}", out.pages.len() + 1);
            out.pages.push(HarPage {
                id: id.clone(),
                started: p.start,
                title: format!("http://{}{}", p.host.as_deref().unwrap_or(""), p.url),
                on_load_ms: Some(p.load.as_millis_f64()),
            });
            for i in &p.txs {
                if let Some(x) = in_page.get_mut(*i) {
                    *x = Some(id.clone());
                }
            }
        }
        for (i, t) in s.txs.iter().enumerate() {
            out.txs.insert((t.conn, t.depth), in_page[i].clone());
        }
    })
}

/// The second pass's sink: keeps the selected transactions whole.
pub struct Keep {
    /// What to keep.
    pub wanted: HashMap<(u64, u32), Option<String>>,
    /// What was kept.
    pub kept: Vec<HttpTransaction>,
}

impl TxSink for Keep {
    fn on_transaction(&mut self, tx: HttpTransaction) {
        if self.wanted.contains_key(&(tx.conn, tx.depth)) {
            self.kept.push(tx);
        }
    }
}

/// The HAR of the kept transactions.
pub fn har(keep: &Keep, pages: &[HarPage], mask: bool) -> serde_json::Value {
    let mut txs: Vec<&HttpTransaction> = keep.kept.iter().collect();
    txs.sort_by_key(|t| (t.timing.start(), t.conn, t.depth));
    let entries: Vec<HarEntry<'_>> = txs
        .iter()
        .map(|t| HarEntry {
            page: keep.wanted.get(&(t.conn, t.depth)).cloned().flatten(),
            tx: t,
            first_on_conn: t.depth == 1,
        })
        .collect();
    pov_replay::har(pages, &entries, mask, env!("CARGO_PKG_VERSION"))
}
