//! Every mio token of the loop comes from this table, so that two sources can never share
//! one: each kind of source owns a band of 2^40 tokens and numbers its sources inside it,
//! wrapping inside the band (2^40 sources of one kind are never alive at once).
//!
//! The loop dispatches on [`Band::of`]; a new kind of source adds a variant here.

use mio::Token;

/// The signalfd.
pub const SIGNALS: Token = Token(0);
/// The instances' sd_notify socket.
pub const NOTIFY: Token = Token(1);

const SHIFT: u32 = 40;
const MASK: u64 = (1 << SHIFT) - 1;

/// A kind of event source with a range of tokens of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// The control socket's listener (number 0) and its connections.
    Control = 1,
    /// Node.js IPC channels, one per node instance.
    NodeIpc = 2,
    /// Captured stdout/stderr pipes of the instances.
    Output = 3,
    /// `ready_check` probe sockets.
    Probes = 4,
    /// The metrics HTTP listener (0) and its connections.
    Metrics = 5,
    /// `health_check` probe sockets.
    Health = 6,
    /// inotify descriptors for `watch`.
    Watch = 7,
    /// Instances' exec-result pipes, numbered by the child's pid.
    Exec = 8,
    /// The output pipes of `apply`'s node evaluation (`eval.rs`).
    Eval = 9,
}

const BANDS: [Band; 9] = [
    Band::Control,
    Band::NodeIpc,
    Band::Output,
    Band::Probes,
    Band::Metrics,
    Band::Health,
    Band::Watch,
    Band::Exec,
    Band::Eval,
];

impl Band {
    /// The `n`th token of this band (n wraps inside the band).
    pub fn token(self, n: u64) -> Token {
        Token((((self as u64) << SHIFT) | (n & MASK)) as usize)
    }

    /// The band a token belongs to, and its number inside it.
    pub fn of(token: Token) -> Option<(Band, u64)> {
        let raw = token.0 as u64;
        let band = raw >> SHIFT;
        BANDS
            .iter()
            .find(|b| **b as u64 == band)
            .map(|b| (*b, raw & MASK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_never_overlap_even_when_numbers_wrap() {
        for b in BANDS {
            for n in [0, 1, MASK, MASK + 1, u64::MAX] {
                let t = b.token(n);
                assert_eq!(Band::of(t).map(|(band, _)| band), Some(b));
                assert_ne!(t, SIGNALS);
                assert_ne!(t, NOTIFY);
            }
        }
        assert_eq!(Band::of(SIGNALS), None);
        assert_eq!(Band::of(NOTIFY), None);
    }
}
