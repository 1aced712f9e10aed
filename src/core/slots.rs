//! The slots of every app, and which of them changed since each consumer last looked.
//!
//! Every mutable access goes through [`Slots::get_mut`] (or marks everything), so the
//! core can keep per-event work in proportion to the slots an event touched: the deadline
//! queue re-reads only those, instead of walking 5,000 slots per wake-up.

use std::collections::BTreeMap;

use super::{Slot, SlotId};

#[derive(Debug, Default)]
pub(super) struct Slots {
    map: BTreeMap<SlotId, Slot>,
    /// Slots handed out mutably since the deadline queue last looked (may repeat).
    changed: Vec<SlotId>,
}

impl Slots {
    pub fn get(&self, id: &SlotId) -> Option<&Slot> {
        self.map.get(id)
    }

    /// The slot, noted as changed.
    pub fn get_mut(&mut self, id: &SlotId) -> Option<&mut Slot> {
        let slot = self.map.get_mut(id)?;
        if self.changed.last() != Some(id) {
            self.changed.push(*id);
        }
        Some(slot)
    }

    /// Every slot, all noted as changed (for the rare operations that touch them all).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.changed.extend(self.map.keys().copied());
        self.map.values_mut()
    }

    pub fn values(&self) -> impl Iterator<Item = &Slot> {
        self.map.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &SlotId> {
        self.map.keys()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_key(&self, id: &SlotId) -> bool {
        self.map.contains_key(id)
    }

    pub fn insert(&mut self, id: SlotId, slot: Slot) {
        self.map.insert(id, slot);
        self.changed.push(id);
    }

    /// Removes the slot, noted as changed so that its deadline leaves the queue too.
    pub fn remove(&mut self, id: &SlotId) -> Option<Slot> {
        self.changed.push(*id);
        self.map.remove(id)
    }

    /// The slots changed since the last call, each once.
    pub fn take_changed(&mut self) -> Vec<SlotId> {
        let mut ids = std::mem::take(&mut self.changed);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Changed slots not yet taken (may repeat).
    pub fn pending_changes(&self) -> &[SlotId] {
        &self.changed
    }
}
