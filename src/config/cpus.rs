//! How many instances `instances = "max"` / `0` / `-N` means.
//!
//! The CPU count is the standard library's `available_parallelism`: on Linux it already
//! takes the affinity mask and the cgroup v1/v2 CPU quota into account (a container
//! limited to 2 CPUs on a 64-core host gets 2 instances), walking up the cgroup hierarchy
//! as the kernel enforces it. A fractional quota counts its whole CPUs (1.5 → 1, at least
//! 1). What runner adds is PM2's arithmetic on top of that count, in [`instances_for`].

/// CPUs usable by this process, at least 1. Never fails: when the count cannot be read,
/// one CPU is assumed (an app with `instances = "max"` still starts).
pub fn usable_cpus() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
        .max(1)
}

/// The instance count for `instances = n` ("max" is 0), as PM2 counts: n > 0 as is,
/// 0 = one per CPU, -N = CPUs minus N but at least 1 (PM2 never starts none).
pub fn instances_for(n: i64, cpus: u32) -> u32 {
    let cpus = cpus.max(1);
    if n > 0 {
        u32::try_from(n).unwrap_or(u32::MAX)
    } else if n == 0 {
        cpus
    } else {
        let minus = n.unsigned_abs();
        u64::from(cpus)
            .checked_sub(minus)
            .and_then(|left| u32::try_from(left).ok())
            .unwrap_or(0)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_arithmetic() {
        assert_eq!(instances_for(4, 8), 4);
        assert_eq!(instances_for(0, 8), 8);
        assert_eq!(instances_for(-1, 8), 7);
        assert_eq!(instances_for(-8, 8), 1);
        assert_eq!(instances_for(-100, 8), 1);
        assert_eq!(instances_for(i64::MIN, 8), 1);
        assert_eq!(instances_for(0, 0), 1);
        assert_eq!(instances_for(i64::MAX, 2), u32::MAX);
    }

    #[test]
    fn usable_cpus_is_at_least_one() {
        assert!(usable_cpus() >= 1);
    }
}
