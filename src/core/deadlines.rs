//! The earliest deadline of each slot, in order.
//!
//! `next_deadline` runs on every wake-up and `tick` whenever something is due; walking
//! every slot in both made each event cost O(instances) (5,000 instances: a start or a
//! reload did 5,000 x 5,000 slot visits). The queue holds one `(deadline, slot)` entry
//! per slot that has one and is brought up to date from the slots changed since the last
//! look ([`Slots::take_changed`](super::slots::Slots::take_changed)), so each event costs
//! O(log N) per slot it touched.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use super::slots::Slots;
use super::{Slot, SlotId};

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    order: BTreeSet<(Instant, SlotId)>,
    /// Each queued slot's entry in `order`.
    queued: HashMap<SlotId, Instant>,
}

impl Deadlines {
    /// Re-reads the slots changed since the last update.
    pub fn update(&mut self, slots: &mut Slots) {
        for id in slots.take_changed() {
            let due = slots.get(&id).and_then(slot_deadline);
            let old = self.queued.get(&id).copied();
            if due == old {
                continue;
            }
            if let Some(old) = old {
                self.order.remove(&(old, id));
                self.queued.remove(&id);
            }
            if let Some(at) = due {
                self.order.insert((at, id));
                self.queued.insert(id, at);
            }
        }
    }

    /// The earliest deadline of the slots not in `changed` (those may have moved since
    /// the last update: the caller reads them itself).
    pub fn earliest_except(&self, changed: &[SlotId]) -> Option<Instant> {
        // Usually a few slots changed; a set keeps a long list from costing its square.
        let many: Option<HashSet<&SlotId>> = (changed.len() > 16).then(|| changed.iter().collect());
        let is_changed = |id: &SlotId| match &many {
            Some(set) => set.contains(id),
            None => changed.contains(id),
        };
        self.order
            .iter()
            .find(|(_, id)| !is_changed(id))
            .map(|(at, _)| *at)
    }

    /// Removes and returns the slots whose deadline is at or before `now`, in id order.
    /// The caller handles them through `Slots::get_mut`, so the next update queues
    /// whatever they still wait for.
    pub fn take_due(&mut self, now: Instant) -> Vec<SlotId> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.order.first() {
            if at > now {
                break;
            }
            self.order.pop_first();
            self.queued.remove(&id);
            due.push(id);
        }
        due.sort_unstable();
        due
    }
}

/// The earliest moment at which [`Core::tick`](super::Core::tick) has something to do
/// for this slot.
pub(super) fn slot_deadline(slot: &Slot) -> Option<Instant> {
    let mut best = slot.restart_at;
    let mut consider = |t: Option<Instant>| {
        if let Some(t) = t {
            best = Some(best.map_or(t, |b| b.min(t)));
        }
    };
    for p in [&slot.proc, &slot.replacement].into_iter().flatten() {
        consider(p.stopping.filter(|s| !s.killed).map(|s| s.kill_at));
        if p.online_since.is_none() && p.main_alive() && p.stopping.is_none() {
            consider(p.ready_deadline);
        }
        if p.is_running() {
            consider(p.watchdog_at);
        }
        if p.is_online() {
            consider(p.health.deadline());
        }
    }
    best
}
