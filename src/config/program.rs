//! From `script`, `args`, `interpreter` and `interpreter_args` to the program to exec and
//! its argv, checked against the filesystem at load time so a typo fails before anything
//! starts.

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use super::value::resolve;

/// The shell used for scripts with whitespace (PM2 uses bash; sh is what every image has).
const SHELL: &str = "/bin/sh";

/// Searched when neither the app's env nor runner's environment has a PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Input<'a> {
    pub script: &'a str,
    /// None when the key is absent: that is what allows the `sh -c` form.
    pub args: Option<Vec<String>>,
    /// As written; "none" means run the script directly.
    pub interpreter: Option<&'a str>,
    pub interpreter_args: Vec<String>,
    /// Resolved working directory: relative scripts and interpreters resolve against it.
    pub cwd: &'a Path,
    /// PATH to search: the app's own if its env sets one, else runner's.
    pub path_var: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub node_ipc: bool,
    /// Whether an interpreter runs the script (so `interpreter_args` mean something).
    pub interpreted: bool,
}

/// Which key a problem belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramError {
    Script(String),
    Interpreter(String),
}

/// The default app name: the script's file stem ("server.js" → "server"), or for a
/// shell command, the stem of its first word ("python3 -m http.server" → "python3").
pub fn default_name(script: &str) -> String {
    let first = script.split_whitespace().next().unwrap_or("");
    let stem = Path::new(first)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.is_empty() {
        first.to_string()
    } else {
        stem
    }
}

/// The interpreter implied by the script's extension.
fn by_extension(script: &str) -> Option<&'static str> {
    let ext = Path::new(script)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    match ext.as_str() {
        "js" | "mjs" | "cjs" => Some("node"),
        "py" => Some("python3"),
        "sh" => Some("sh"),
        _ => None,
    }
}

fn is_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false)
}

fn is_executable_file(p: &Path) -> bool {
    is_file(p) && access(p, AccessFlags::X_OK).is_ok()
}

/// Looks a bare name up in PATH; `need_exec` is false for scripts an interpreter reads.
fn which(name: &str, path_var: Option<&str>, cwd: &Path, need_exec: bool) -> Option<PathBuf> {
    let path_var = path_var.unwrap_or(DEFAULT_PATH);
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| resolve(cwd, Path::new(d)).join(name))
        .find(|p| {
            if need_exec {
                is_executable_file(p)
            } else {
                is_file(p)
            }
        })
}

/// A path (anything with a `/`) resolves against the cwd; a bare name is a file in the cwd
/// if one exists, else it is looked up in PATH.
fn locate(name: &str, input: &Input, need_exec: bool) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(resolve(input.cwd, Path::new(name)));
    }
    let local = input.cwd.join(name);
    if local.exists() {
        return Ok(local);
    }
    which(name, input.path_var, input.cwd, need_exec).ok_or_else(|| {
        format!(
            "`{name}` is neither in {} nor found in PATH",
            input.cwd.display()
        )
    })
}

pub fn resolve_program(input: &Input) -> Result<Program, ProgramError> {
    let explicit = input.interpreter.filter(|i| *i != "none");
    let no_interpreter = input.interpreter == Some("none");

    if input.args.is_none() && explicit.is_none() && input.script.contains(char::is_whitespace) {
        let shell = Path::new(SHELL);
        if !is_executable_file(shell) {
            return Err(ProgramError::Script(format!(
                "`script` contains spaces, so it is run with {SHELL} -c, but {SHELL} does not exist here; use `args` for the arguments"
            )));
        }
        return Ok(Program {
            program: shell.to_path_buf(),
            argv: vec!["sh".into(), "-c".into(), input.script.to_string()],
            node_ipc: false,
            interpreted: false,
        });
    }

    let interpreter = if no_interpreter {
        None
    } else {
        explicit.or_else(|| by_extension(input.script))
    };
    let args = input.args.clone().unwrap_or_default();

    match interpreter {
        None => {
            let path = locate(input.script, input, true)
                .map_err(|e| ProgramError::Script(format!("script {e}")))?;
            check_executable(&path, "script").map_err(ProgramError::Script)?;
            let mut argv = vec![input.script.to_string()];
            argv.extend(args);
            Ok(Program {
                program: path,
                argv,
                node_ipc: false,
                interpreted: false,
            })
        }
        Some(interp) => {
            let script = locate(input.script, input, false)
                .map_err(|e| ProgramError::Script(format!("script {e}")))?;
            if !script.exists() {
                return Err(ProgramError::Script(format!(
                    "script `{}` does not exist",
                    script.display()
                )));
            }
            if !is_file(&script) || access(&script, AccessFlags::R_OK).is_err() {
                return Err(ProgramError::Script(format!(
                    "script `{}` is not a readable file",
                    script.display()
                )));
            }
            let program = if interp.contains('/') {
                let p = resolve(input.cwd, Path::new(interp));
                check_executable(&p, "interpreter").map_err(ProgramError::Interpreter)?;
                p
            } else {
                which(interp, input.path_var, input.cwd, true).ok_or_else(|| {
                    let how = if explicit.is_some() {
                        String::new()
                    } else {
                        format!(
                            " (chosen from the extension of `{}`; set `interpreter` to change it)",
                            input.script
                        )
                    };
                    let msg = format!("interpreter `{interp}` not found in PATH{how}");
                    if explicit.is_some() {
                        ProgramError::Interpreter(msg)
                    } else {
                        ProgramError::Script(msg)
                    }
                })?
            };
            let file_name = Path::new(interp)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            let node_ipc = matches!(file_name, "node" | "nodejs");
            let mut argv = vec![interp.to_string()];
            argv.extend(input.interpreter_args.iter().cloned());
            argv.push(script.to_string_lossy().into_owned());
            argv.extend(args);
            Ok(Program {
                program,
                argv,
                node_ipc,
                interpreted: true,
            })
        }
    }
}

fn check_executable(path: &Path, what: &str) -> Result<(), String> {
    let shown = path.display();
    if !path.exists() {
        return Err(format!("{what} `{shown}` does not exist"));
    }
    if !is_file(path) {
        return Err(format!("{what} `{shown}` is not a file"));
    }
    if access(path, AccessFlags::X_OK).is_err() {
        let hint = if what == "script" {
            " (chmod +x it, or set `interpreter`)"
        } else {
            ""
        };
        return Err(format!("{what} `{shown}` is not executable{hint}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_script() {
        assert_eq!(default_name("server.js"), "server");
        assert_eq!(default_name("./bin/api"), "api");
        assert_eq!(default_name("python3 -m http.server"), "python3");
        assert_eq!(default_name("/usr/bin/env node x.js"), "env");
        assert_eq!(default_name(".hidden"), ".hidden");
        assert_eq!(default_name(""), "");
    }

    #[test]
    fn interpreters_by_extension() {
        assert_eq!(by_extension("a.js"), Some("node"));
        assert_eq!(by_extension("a.MJS"), Some("node"));
        assert_eq!(by_extension("a.cjs"), Some("node"));
        assert_eq!(by_extension("a.py"), Some("python3"));
        assert_eq!(by_extension("a.sh"), Some("sh"));
        assert_eq!(by_extension("a.rb"), None);
        assert_eq!(by_extension("a"), None);
    }
}
