//! The chunks still to fetch of one transfer, shared by every peer's workers: a worker
//! takes the next run of consecutive chunks it may try (a span, fetched in one
//! request), so a fast peer takes more and every link stays busy. A chunk that failed
//! on a peer goes back for the peer that failed it least; one that failed twice on
//! every peer is given up.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

struct Item {
    idx: usize,
    /// Failures so far, by link position.
    failed: Vec<u8>,
}

impl Item {
    fn eligible(&self, link: usize) -> bool {
        let least = self.failed.iter().copied().min().unwrap_or(0);
        self.failed[link] < 2 && self.failed[link] == least
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    in_flight: usize,
    /// Why chunks were given up, by peer.
    errors: HashMap<String, String>,
    given_up: Vec<usize>,
    /// Failure counts of taken chunks that failed before, until their span is done.
    kept: HashMap<usize, Vec<u8>>,
}

pub struct Spans {
    links: usize,
    state: Mutex<State>,
    wake: Notify,
}

/// A taken span: consecutive chunk indexes.
pub struct Taken {
    pub first: usize,
    pub count: usize,
}

impl Spans {
    pub fn new(missing: impl IntoIterator<Item = usize>, links: usize) -> Spans {
        let items = missing
            .into_iter()
            .map(|idx| Item {
                idx,
                failed: vec![0; links],
            })
            .collect();
        Spans {
            links,
            state: Mutex::new(State {
                items,
                ..Default::default()
            }),
            wake: Notify::new(),
        }
    }

    /// The next span of at most `max` chunks for link `link`, waiting while others are
    /// in flight; `None` when nothing is left to do.
    pub async fn take(&self, link: usize, max: usize) -> Option<Taken> {
        loop {
            let notified = self.wake.notified();
            {
                let mut st = self.state.lock().expect("spans lock");
                if let Some(pos) = st.items.iter().position(|i| i.eligible(link)) {
                    let first = st.items[pos].idx;
                    let mut count = 1;
                    while count < max
                        && st
                            .items
                            .get(pos + count)
                            .is_some_and(|i| i.idx == first + count && i.eligible(link))
                    {
                        count += 1;
                    }
                    // The taken items leave the queue; their failures wait in `kept`.
                    let taken: Vec<Item> = st.items.drain(pos..pos + count).collect();
                    for it in taken {
                        if it.failed.iter().any(|f| *f > 0) {
                            st.kept.insert(it.idx, it.failed);
                        }
                    }
                    st.in_flight += 1;
                    return Some(Taken { first, count });
                }
                if st.items.is_empty() && st.in_flight == 0 {
                    return None;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// A span is done: `done` chunks from its start arrived; the rest go back, the
    /// first of them counted as failed on `link` when `failure` says why.
    pub fn finish(
        &self,
        link: usize,
        iss: &str,
        span: Taken,
        done: usize,
        failure: Option<String>,
    ) {
        let mut st = self.state.lock().expect("spans lock");
        st.in_flight -= 1;
        let mut back = Vec::new();
        for idx in span.first..span.first + done {
            st.kept.remove(&idx);
        }
        for idx in span.first + done..span.first + span.count {
            let mut failed = st.kept.remove(&idx).unwrap_or_else(|| vec![0; self.links]);
            if idx == span.first + done
                && let Some(why) = &failure
            {
                failed[link] = failed[link].saturating_add(1);
                st.errors.insert(iss.to_string(), why.clone());
            }
            let item = Item { idx, failed };
            if (0..self.links).any(|l| item.eligible(l)) {
                back.push(item);
            } else {
                st.given_up.push(idx);
            }
        }
        // Back at the front, in order: the in-order digests wait for them.
        for item in back.into_iter().rev() {
            let pos = st.items.partition_point(|i| i.idx < item.idx);
            st.items.insert(pos, item);
        }
        drop(st);
        self.wake.notify_waiters();
    }

    /// Chunks given up, and why each peer failed.
    pub fn outcome(&self) -> (Vec<usize>, Vec<String>) {
        let st = self.state.lock().expect("spans lock");
        let why = st
            .errors
            .iter()
            .map(|(iss, e)| format!("{iss}: {e}"))
            .collect();
        (st.given_up.clone(), why)
    }
}
