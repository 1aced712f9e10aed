//! Loading files that try to reach past their rights or their bounds: env files of apps
//! running as another user, instance counts, `increment_var` overflow.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;

use super::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "runner-config-hardening-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn errors(dir: &std::path::Path, toml: &str) -> String {
    match load_str(toml, &dir.join("ecosystem.toml"), &LoadOptions::default()) {
        Ok(_) => panic!("expected errors for:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn an_env_file_is_read_with_the_apps_rights_and_never_through_a_link() {
    if !root() {
        eprintln!("SKIP: needs root (the app runs as uid 65534)");
        return;
    }
    let d = scratch("envfile");
    // The app's folder is its own; the secret is root's.
    let app = d.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::os::unix::fs::chown(&app, Some(65534), Some(65534)).unwrap();
    let secret = d.join("secret");
    std::fs::write(&secret, "ROOT_TOKEN=s3cr3t\nroot:$6$hash:1::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&secret, app.join(".env")).unwrap();
    let toml = format!(
        "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\ncwd = \"{}\"\nuid = \"65534\"\nenv_file = \"{}/.env\"\n",
        app.display(),
        app.display()
    );
    let e = errors(&d, &toml);
    assert!(e.contains("symbolic link"), "{e}");
    assert!(!e.contains("s3cr3t") && !e.contains("$6$"), "{e}");
    // Named directly, the root-only file is refused with the app's rights.
    let toml = toml.replace(
        &format!("\"{}/.env\"", app.display()),
        &format!("\"{}\"", secret.display()),
    );
    let e = errors(&d, &toml);
    assert!(e.contains("ermission denied"), "{e}");
    assert!(!e.contains("s3cr3t") && !e.contains("$6$"), "{e}");
    // Without a uid the same link is the operator's own choice and is read.
    let toml = format!(
        "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\ncwd = \"{}\"\nenv_file = \"{}/.env\"\n",
        app.display(),
        app.display()
    );
    let e = errors(&d, &toml);
    // It was read (its second line is malformed), and no line is shown.
    assert!(e.contains(".env:2:1: expected KEY=value"), "{e}");
    assert!(!e.contains("s3cr3t") && !e.contains("$6$"), "{e}");
    // A file the app may read is read.
    std::fs::remove_file(app.join(".env")).unwrap();
    std::fs::write(app.join(".env"), "A=1\n").unwrap();
    let toml = format!(
        "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\ncwd = \"{}\"\nuid = \"65534\"\nenv_file = \"{}/.env\"\n",
        app.display(),
        app.display()
    );
    let eco = load_str(&toml, &d.join("ecosystem.toml"), &LoadOptions::default()).unwrap();
    assert_eq!(eco.apps[0].env.get("A").map(String::as_str), Some("1"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn instances_above_the_cap_are_a_load_error() {
    let d = scratch("cap");
    let ok =
        format!("[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\ninstances = {MAX_INSTANCES}\n");
    let eco = load_str(&ok, &d.join("ecosystem.toml"), &LoadOptions::default()).unwrap();
    assert_eq!(eco.apps[0].instances, MAX_INSTANCES);
    for n in ["10001", "4000000000", "\"4000000000\""] {
        let e = errors(
            &d,
            &format!("[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\ninstances = {n}\n"),
        );
        assert!(
            e.contains("instances") && (e.contains("limit") || e.contains("too large")),
            "{e}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_increment_var_that_would_overflow_is_a_load_error() {
    let d = scratch("incr");
    let e = errors(
        &d,
        &format!(
            "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\nenv = {{ PORT = \"{}\" }}\nincrement_var = \"PORT\"\n",
            i64::MAX - 1
        ),
    );
    assert!(
        e.contains("increment_var") && e.contains("too large"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_ready_check_host_is_resolved_once_at_load() {
    let d = scratch("dns");
    let eco = load_str(
        "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\nready_check = \"tcp://localhost:8080\"\n",
        &d.join("ecosystem.toml"),
        &LoadOptions::default(),
    )
    .unwrap();
    let addr = eco.apps[0].ready_addr.expect("resolved at load");
    assert!(addr.ip().is_loopback() && addr.port() == 8080, "{addr}");
    let e = errors(
        &d,
        "[[apps]]\nname = \"a\"\nscript = \"/bin/true\"\nready_check = \"http://no-such-host.invalid:80/\"\n",
    );
    assert!(
        e.contains("ready_check") && e.contains("no-such-host.invalid"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
