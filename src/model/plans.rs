//! The optimised plans of one model, one per network input size: each built
//! once however many requests want it at the same time (single flight),
//! a few kept, and new sizes rationed.
//!
//! Why a ration and not rounding to a few kept sizes: optimising a plan
//! costs a worker about as long as a few inferences (tract's optimiser plus
//! our rewrite passes), so a client cycling `size` through 32..1280 would
//! otherwise keep every worker re-optimising and starve the others.
//! Rounding each size to the nearest kept one would silently answer a
//! different question than the one asked (boxes and scores change with the
//! input size); a 503 with Retry-After tells the client, and requests at
//! sizes already built are never refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

/// Plans kept per model, the load-time size included.
pub const KEPT: usize = 4;
/// New plans a model may build per minute, besides the one built at load.
pub const BUILDS_PER_MINUTE: usize = 6;
const WINDOW: Duration = Duration::from_secs(60);

/// A new size was asked for while the model's ration was used up.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{BUILDS_PER_MINUTE} new input sizes were optimised in the last minute")]
pub struct SizeBudget {
    /// Seconds until a build is allowed again.
    pub retry_after: u32,
}

/// One size's plan: empty until its first builder finishes. Later requests
/// at that size wait on the lock instead of building it again.
type Slot<T> = Arc<Mutex<Option<T>>>;

struct Inner<T> {
    /// Most recently used first.
    slots: VecDeque<(u32, Slot<T>)>,
    /// When each build of the last minute was started.
    recent: VecDeque<Instant>,
    /// The size built at load: never evicted, never rationed.
    pinned: Option<u32>,
}

pub struct Plans<T> {
    inner: Mutex<Inner<T>>,
    built: AtomicU64,
}

impl<T: Clone> Default for Plans<T> {
    fn default() -> Self {
        Plans {
            inner: Mutex::new(Inner { slots: VecDeque::new(), recent: VecDeque::new(), pinned: None }),
            built: AtomicU64::new(0),
        }
    }
}

impl<T: Clone> Plans<T> {
    /// Plans built so far (for tests and metrics).
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::SeqCst)
    }

    /// Builds the plan for `size` now and keeps it for good.
    pub fn pin(&self, size: u32, build: impl FnOnce() -> Result<T>) -> Result<T> {
        self.lock().pinned = Some(size);
        self.get(size, build)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan for `size`: kept, being built by another request (then
    /// waited for), or built here by `build`. A size not kept, past the
    /// ration, is a [`SizeBudget`] error.
    pub fn get(&self, size: u32, build: impl FnOnce() -> Result<T>) -> Result<T> {
        let slot = {
            let mut inner = self.lock();
            if let Some(pos) = inner.slots.iter().position(|(s, _)| *s == size) {
                let entry = inner.slots.remove(pos).expect("position is in range");
                let slot = entry.1.clone();
                inner.slots.push_front(entry);
                slot
            } else {
                if inner.pinned != Some(size) {
                    let now = Instant::now();
                    while inner.recent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                        inner.recent.pop_front();
                    }
                    if inner.recent.len() >= BUILDS_PER_MINUTE {
                        let oldest = inner.recent[0];
                        let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                        return Err(SizeBudget { retry_after: wait.as_secs() as u32 + 1 }.into());
                    }
                    inner.recent.push_back(now);
                }
                let slot: Slot<T> = Arc::new(Mutex::new(None));
                inner.slots.push_front((size, slot.clone()));
                while inner.slots.len() > KEPT {
                    let pinned = inner.pinned;
                    let Some(victim) = inner.slots.iter().rposition(|(s, _)| Some(*s) != pinned) else { break };
                    inner.slots.remove(victim);
                }
                slot
            }
        };
        let mut plan = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = &*plan {
            return Ok(plan.clone());
        }
        match build() {
            Ok(built) => {
                self.built.fetch_add(1, Ordering::SeqCst);
                *plan = Some(built.clone());
                Ok(built)
            }
            Err(e) => {
                // Not kept: the next request at this size tries again.
                drop(plan);
                self.lock().slots.retain(|(_, s)| !Arc::ptr_eq(s, &slot));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn concurrent_first_requests_at_a_size_build_it_once() {
        let plans: Arc<Plans<Arc<u32>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (plans, calls) = (plans.clone(), calls.clone());
                std::thread::spawn(move || {
                    plans
                        .get(320, || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            Ok(Arc::new(320))
                        })
                        .unwrap()
                })
            })
            .collect();
        let got: Vec<Arc<u32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(plans.built(), 1);
        assert!(got.iter().all(|p| Arc::ptr_eq(p, &got[0])), "every request got the one plan");
    }

    #[test]
    fn new_sizes_past_the_ration_are_refused_and_kept_ones_are_not() {
        let plans: Plans<u32> = Plans::default();
        plans.pin(640, || Ok(640)).unwrap();
        let sizes: Vec<u32> = (1..=BUILDS_PER_MINUTE as u32).map(|k| 32 * k).collect();
        for &s in &sizes {
            assert_eq!(plans.get(s, || Ok(s)).unwrap(), s);
        }
        let e = plans.get(1280, || Ok(1280)).unwrap_err();
        let budget = e.downcast_ref::<SizeBudget>().expect("a SizeBudget error");
        assert!((1..=60).contains(&budget.retry_after), "{budget:?}");
        // The load-time size and the most recent ones are still served.
        assert_eq!(plans.get(640, || panic!("640 is pinned")).unwrap(), 640);
        let last = *sizes.last().unwrap();
        assert_eq!(plans.get(last, || panic!("{last} is kept")).unwrap(), last);
        // An evicted size is a new build again, so it is refused too.
        assert!(plans.get(sizes[0], || Ok(0)).is_err());
        assert_eq!(plans.built() as usize, 1 + BUILDS_PER_MINUTE);
    }

    #[test]
    fn a_failed_build_is_not_kept() {
        let plans: Plans<u32> = Plans::default();
        assert!(plans.get(64, || anyhow::bail!("boom")).is_err());
        assert_eq!(plans.get(64, || Ok(64)).unwrap(), 64);
    }
}
