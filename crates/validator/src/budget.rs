//! A counting semaphore over bytes of memory, bounding concurrent key derivations.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Default memory budget for concurrent key derivations: 1 GiB (four reference scrypt keys).
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

/// Hands out memory to derivations so that their sum stays within a budget.
///
/// A derivation that alone exceeds the budget still runs, but only when nothing else runs, so
/// with uniform keystores of cost `c` at most `max(1, budget / c)` derivations run at once.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    used: u64,
    running: usize,
    peak_running: usize,
    peak_used: u64,
}

/// Peak usage observed by a [`MemoryBudget`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStats {
    /// Most derivations that ran at the same time.
    pub peak_concurrent: usize,
    /// Most memory charged at the same time, in bytes.
    pub peak_memory: u64,
}

/// Memory held by one running derivation; released on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a MemoryBudget,
    cost: u64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget {
            limit,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many derivations of `cost` bytes may run at once: `max(1, limit / cost)`.
    pub fn max_concurrent(&self, cost: u64) -> u64 {
        (self.limit / cost.max(1)).max(1)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `cost` bytes fit in the budget (or nothing else runs), then takes them.
    pub fn acquire(&self, cost: u64) -> Permit<'_> {
        let mut state = self.lock();
        while state.running > 0 && state.used.saturating_add(cost) > self.limit {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.used = state.used.saturating_add(cost);
        state.running += 1;
        state.peak_running = state.peak_running.max(state.running);
        state.peak_used = state.peak_used.max(state.used);
        Permit { budget: self, cost }
    }

    /// Peaks observed so far.
    pub fn stats(&self) -> BudgetStats {
        let state = self.lock();
        BudgetStats {
            peak_concurrent: state.peak_running,
            peak_memory: state.peak_used,
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.used = state.used.saturating_sub(self.cost);
        state.running = state.running.saturating_sub(1);
        drop(state);
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_job_runs_alone() {
        let budget = MemoryBudget::new(10);
        let big = budget.acquire(100);
        assert_eq!(budget.stats().peak_concurrent, 1);
        drop(big);
        let a = budget.acquire(5);
        let b = budget.acquire(5);
        assert_eq!(budget.stats().peak_concurrent, 2);
        assert_eq!(budget.stats().peak_memory, 100);
        drop((a, b));
        assert_eq!(budget.max_concurrent(4), 2);
        assert_eq!(budget.max_concurrent(400), 1);
    }

    #[test]
    fn waits_for_memory() {
        let budget = MemoryBudget::new(10);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let _p = budget.acquire(4);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                });
            }
        });
        let stats = budget.stats();
        assert!(stats.peak_concurrent <= 2, "{stats:?}");
        assert!(stats.peak_memory <= 10, "{stats:?}");
    }
}
