//! `uid` / `gid`: names resolved once, at load time, so a typo fails before anything starts.

use std::ffi::CString;

use nix::unistd::{getgid, getgrouplist, getuid, Gid, Group, Uid, User};

use super::model::Credentials;

/// A `uid` or `gid` as written: a number or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Number(u32),
    Name(String),
}

impl Id {
    /// Numeric strings are numbers, as in `chown 1000`.
    pub fn from_text(s: &str) -> Id {
        match s.parse::<u32>() {
            Ok(n) => Id::Number(n),
            Err(_) => Id::Name(s.to_string()),
        }
    }
}

/// Problems point at either key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredError {
    Uid(String),
    Gid(String),
}

/// Resolves the pair. With a uid, the group defaults to the user's primary group and the
/// supplementary groups are the user's; a numeric uid with no passwd entry (common in
/// containers) gets the gid of the same number (never runner's own, which is 0 as root)
/// and no supplementary groups. With only a gid, the user stays runner's own.
pub fn resolve(uid: Option<&Id>, gid: Option<&Id>) -> Result<Option<Credentials>, CredError> {
    if uid.is_none() && gid.is_none() {
        return Ok(None);
    }
    let explicit_gid = match gid {
        None => None,
        Some(Id::Number(n)) => Some(*n),
        Some(Id::Name(name)) => match Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid.as_raw()),
            Ok(None) => return Err(CredError::Gid(format!("no group named `{name}`"))),
            Err(e) => {
                return Err(CredError::Gid(format!(
                    "cannot look up group `{name}`: {e}"
                )))
            }
        },
    };
    let user = match uid {
        None => None,
        Some(Id::Number(n)) => match User::from_uid(Uid::from_raw(*n)) {
            Ok(u) => u
                .map(|u| (u.name, u.uid.as_raw(), u.gid.as_raw(), Some(u.dir)))
                .or(Some((String::new(), *n, *n, None))),
            Err(e) => return Err(CredError::Uid(format!("cannot look up uid {n}: {e}"))),
        },
        Some(Id::Name(name)) => match User::from_name(name) {
            Ok(Some(u)) => Some((u.name, u.uid.as_raw(), u.gid.as_raw(), Some(u.dir))),
            Ok(None) => return Err(CredError::Uid(format!("no user named `{name}`"))),
            Err(e) => return Err(CredError::Uid(format!("cannot look up user `{name}`: {e}"))),
        },
    };
    Ok(Some(match user {
        None => Credentials {
            uid: getuid().as_raw(),
            gid: explicit_gid.unwrap_or_else(|| getgid().as_raw()),
            groups: Vec::new(),
            passwd: None,
        },
        Some((name, uid, primary, dir)) => {
            let gid = explicit_gid.unwrap_or(primary);
            Credentials {
                uid,
                gid,
                groups: supplementary_groups(&name, gid),
                passwd: dir.map(|d| (name, d.to_string_lossy().into_owned())),
            }
        }
    }))
}

/// The user's groups from /etc/group (the base gid included, as initgroups would set).
/// A failed lookup leaves only the base group rather than failing the load.
fn supplementary_groups(name: &str, gid: u32) -> Vec<u32> {
    if name.is_empty() {
        return Vec::new();
    }
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    match getgrouplist(&cname, Gid::from_raw(gid)) {
        Ok(groups) => {
            let mut g: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
            g.sort_unstable();
            g.dedup();
            g
        }
        Err(_) => vec![gid],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_told_apart() {
        assert_eq!(Id::from_text("1000"), Id::Number(1000));
        assert_eq!(Id::from_text("www-data"), Id::Name("www-data".into()));
        assert_eq!(Id::from_text("-1"), Id::Name("-1".into()));
    }

    #[test]
    fn root_by_name_gets_its_primary_group() {
        let c = resolve(Some(&Id::Name("root".into())), None)
            .unwrap()
            .unwrap();
        assert_eq!((c.uid, c.gid), (0, 0));
        assert!(c.groups.contains(&0));
        let (name, home) = c.passwd.unwrap();
        assert_eq!(name, "root");
        assert!(!home.is_empty());
    }

    #[test]
    fn only_gid_keeps_runners_uid() {
        let c = resolve(None, Some(&Id::Number(4242))).unwrap().unwrap();
        assert_eq!(c.uid, getuid().as_raw());
        assert_eq!(c.gid, 4242);
        assert!(c.groups.is_empty());
    }

    #[test]
    fn unknown_numeric_uid_is_allowed_and_unknown_names_are_not() {
        let c = resolve(Some(&Id::Number(3_999_999)), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.uid, 3_999_999);
        // Never runner's own gid (0 as root): the group of the same number.
        assert_eq!(c.gid, 3_999_999);
        assert!(c.groups.is_empty());
        assert_eq!(c.passwd, None);
        let c = resolve(Some(&Id::Number(3_999_999)), Some(&Id::Number(7)))
            .unwrap()
            .unwrap();
        assert_eq!(c.gid, 7);
        assert!(matches!(
            resolve(Some(&Id::Name("no-such-user-xyz".into())), None),
            Err(CredError::Uid(m)) if m.contains("no user named")
        ));
        assert!(matches!(
            resolve(None, Some(&Id::Name("no-such-group-xyz".into()))),
            Err(CredError::Gid(m)) if m.contains("no group named")
        ));
        assert_eq!(resolve(None, None), Ok(None));
    }
}
