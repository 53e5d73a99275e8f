//! When to ask about an epoch. Attestations for epoch `e` may be included until the end of
//! epoch `e + 1`, and nodes answer liveness only for the current and the previous epoch, so
//! `e` is asked about at the start of the last slot of `e + 1`: late enough to have seen them,
//! early enough to be answered.

use crate::beacon::ChainSpec;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub genesis_time: u64,
    pub spec: ChainSpec,
}

impl Schedule {
    fn epoch_start(&self, epoch: u64) -> u64 {
        self.genesis_time + epoch * self.spec.slots_per_epoch * self.spec.seconds_per_slot
    }

    /// Unix time at which `epoch` is asked about.
    pub fn ask_at(&self, epoch: u64) -> u64 {
        self.epoch_start(epoch + 2) - self.spec.seconds_per_slot
    }

    /// Unix time after which nodes no longer answer for `epoch` (it is not the previous one).
    pub fn window_end(&self, epoch: u64) -> u64 {
        self.epoch_start(epoch + 2)
    }

    /// The first epoch whose asking time is still ahead at `now` (Unix seconds): the previous
    /// epoch if the current one's last slot has not begun, else the current one.
    pub fn first_epoch(&self, now: f64) -> u64 {
        let epoch_secs = (self.spec.slots_per_epoch * self.spec.seconds_per_slot) as f64;
        let current = ((now - self.genesis_time as f64) / epoch_secs).max(0.0) as u64;
        let previous = current.saturating_sub(1);
        if self.ask_at(previous) as f64 >= now {
            previous
        } else {
            current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_in_the_last_slot_of_the_next_epoch() {
        let s = Schedule {
            genesis_time: 1000,
            spec: ChainSpec {
                seconds_per_slot: 12,
                slots_per_epoch: 32,
            },
        };
        assert_eq!(s.ask_at(0), 1000 + 63 * 12);
        assert_eq!(s.window_end(0), 1000 + 64 * 12);
        assert_eq!(s.first_epoch(1000.0 + 384.0 * 10.0 + 5.0), 9);
        assert_eq!(s.first_epoch(1000.0 + 384.0 * 10.0 + 31.0 * 12.0 + 1.0), 10);
        assert_eq!(s.first_epoch(10.0), 0, "before genesis");
    }
}
