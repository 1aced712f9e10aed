//! How many CPUs runner may really use: the affinity mask and the cgroup CPU quota, not
//! the host's count (a container limited to 2 CPUs on a 64-core host gets 2 instances).
//!
//! Why not only `std::thread::available_parallelism`, which reads the same sources: it
//! rounds a fractional quota down (1.5 CPUs → 1), and `instances = "max"` rounds it up
//! (→ 2 workers), so that a pod limited to 1500m uses all of its quota instead of
//! two thirds of it. The rounding needs the quota itself, hence the cgroup reading here.

use std::fs;
use std::path::{Component, Path, PathBuf};

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

/// CPUs usable by this process, at least 1. Never fails: a source that cannot be read
/// imposes no limit.
pub fn usable_cpus() -> u32 {
    let affinity = affinity_count().or_else(|| {
        std::thread::available_parallelism()
            .ok()
            .and_then(|n| u32::try_from(n.get()).ok())
    });
    let quota = cgroup_quota();
    let n = match (affinity, quota) {
        (Some(a), Some(q)) => a.min(q),
        (Some(a), None) => a,
        (None, Some(q)) => q,
        (None, None) => 1,
    };
    n.max(1)
}

/// The instance count for `instances = n` ("max" is 0): n > 0 as is, 0 = one per CPU,
/// -N = CPUs minus N but at least 1.
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

fn affinity_count() -> Option<u32> {
    let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let n = (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    u32::try_from(n).ok().filter(|&n| n > 0)
}

fn cgroup_quota() -> Option<u32> {
    let self_cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    if let Some(path) = v2_path(&self_cgroup) {
        if let Some(q) = walk_up(Path::new("/sys/fs/cgroup"), &path, |dir| {
            fs::read_to_string(dir.join("cpu.max"))
                .ok()
                .and_then(|t| quota_from_cpu_max(&t))
        }) {
            return Some(q);
        }
    }
    let path = v1_cpu_path(&self_cgroup)?;
    ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"]
        .iter()
        .find_map(|mount| {
            walk_up(Path::new(mount), &path, |dir| {
                let quota = fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?;
                let period = fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
                quota_from_v1(&quota, &period)
            })
        })
}

/// The smallest limit found from the process's cgroup up to the root of the hierarchy:
/// a parent's quota caps its children.
fn walk_up(root: &Path, cgroup: &str, read: impl Fn(&Path) -> Option<u32>) -> Option<u32> {
    let mut dirs = vec![root.to_path_buf()];
    // A path with `..` means our cgroup is outside this namespace's view: only the
    // root we can see says anything reliable.
    let rel = Path::new(cgroup.trim_start_matches('/'));
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        let mut dir: PathBuf = root.to_path_buf();
        for c in rel.components() {
            dir.push(c);
            dirs.push(dir.clone());
        }
    }
    dirs.iter().filter_map(|d| read(d)).min()
}

/// The cgroup v2 path from /proc/self/cgroup ("0::/path").
fn v2_path(self_cgroup: &str) -> Option<String> {
    self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// The cgroup v1 path of the `cpu` controller ("4:cpu,cpuacct:/path").
fn v1_cpu_path(self_cgroup: &str) -> Option<String> {
    self_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        controllers
            .split(',')
            .any(|c| c == "cpu")
            .then(|| path.trim().to_string())
    })
}

/// CPUs allowed by a cgroup v2 `cpu.max` ("200000 100000" → 2; "max 100000" → none),
/// rounded up so a 1.5-CPU quota gets 2 instances.
pub fn quota_from_cpu_max(text: &str) -> Option<u32> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period = it.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    cpus_from(quota.parse().ok()?, period.parse().ok()?)
}

/// CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = no limit).
pub fn quota_from_v1(quota: &str, period: &str) -> Option<u32> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    cpus_from(u64::try_from(quota).ok()?, u64::try_from(period).ok()?)
}

fn cpus_from(quota: u64, period: u64) -> Option<u32> {
    if quota == 0 || period == 0 {
        return None;
    }
    let n = quota.div_ceil(period);
    Some(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_quota_rounds_up() {
        assert_eq!(quota_from_cpu_max("max 100000\n"), None);
        assert_eq!(quota_from_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(quota_from_cpu_max("150000 100000"), Some(2));
        assert_eq!(quota_from_cpu_max("50000 100000"), Some(1));
        assert_eq!(quota_from_cpu_max("100000"), Some(1));
        assert_eq!(quota_from_cpu_max(""), None);
        assert_eq!(quota_from_cpu_max("garbage 1"), None);
        assert_eq!(quota_from_cpu_max("100 0"), None);
    }

    #[test]
    fn v1_quota_minus_one_is_unlimited() {
        assert_eq!(quota_from_v1("-1\n", "100000\n"), None);
        assert_eq!(quota_from_v1("300000\n", "100000\n"), Some(3));
        assert_eq!(quota_from_v1("x", "100000"), None);
    }

    #[test]
    fn proc_self_cgroup_paths() {
        assert_eq!(
            v2_path("0::/system.slice/x.service\n"),
            Some("/system.slice/x.service".into())
        );
        let v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n";
        assert_eq!(v2_path(v1), None);
        assert_eq!(v1_cpu_path(v1), Some("/docker/abc".into()));
        assert_eq!(v1_cpu_path("3:cpuset:/x\n"), None);
    }

    #[test]
    fn the_smallest_limit_on_the_way_to_the_root_wins() {
        let read = |d: &Path| match d.to_str() {
            Some("/cg") => Some(8),
            Some("/cg/a") => Some(2),
            Some("/cg/a/b") => Some(4),
            _ => None,
        };
        assert_eq!(walk_up(Path::new("/cg"), "/a/b", read), Some(2));
        assert_eq!(walk_up(Path::new("/cg"), "/", read), Some(8));
        assert_eq!(walk_up(Path::new("/cg"), "/../x", read), Some(8));
        assert_eq!(walk_up(Path::new("/cg"), "/zz", |_| None), None);
    }

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
