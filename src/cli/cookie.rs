//! Where the shared secret comes from: `--cookie-file`, else `PAXOSKV_COOKIE`, else
//! `~/.paxoskv.cookie`, which is made on first use with 20 random alphanumeric
//! characters and mode 0600, as Erlang makes `~/.erlang.cookie`. `--cookie` still works
//! (the brief's command line has it) but warns: argv shows in `ps` to every user.

use rand::Rng;
use rand::distr::Alphanumeric;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The environment variable holding the cookie.
pub const COOKIE_ENV: &str = "PAXOSKV_COOKIE";
/// The cookie file's name in the home directory.
pub const COOKIE_FILE: &str = ".paxoskv.cookie";
/// Length of a made cookie.
const COOKIE_LEN: usize = 20;

/// Why no cookie could be had.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    #[error(
        "no cookie: give --cookie-file, set {COOKIE_ENV}, or set HOME so that ~/{COOKIE_FILE} can be used"
    )]
    NoHome,
    #[error("the cookie file {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read the cookie file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create the cookie file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("the cookie file {0} is empty")]
    Empty(PathBuf),
    #[error("the cookie given is empty")]
    EmptyGiven,
}

/// The cookie as the command line asks: `--cookie` (with a warning), else
/// `--cookie-file`, else [`resolve`].
pub fn from_args(arg: &crate::cli::args::CookieArg) -> Result<String, CookieError> {
    if arg.cookie.is_some() {
        log::warn!(
            "--cookie shows the secret to every user of this machine (ps, /proc); use \
             --cookie-file FILE or {COOKIE_ENV} instead"
        );
    }
    if let Some(path) = &arg.cookie_file {
        return given_file(path);
    }
    resolve(arg.cookie.as_deref())
}

/// A cookie file named on the command line: read, never made.
fn given_file(path: &Path) -> Result<String, CookieError> {
    match fs::read_to_string(path) {
        Ok(text) => checked(path, &text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(CookieError::Missing(path.to_path_buf()))
        }
        Err(source) => Err(CookieError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The cookie: the flag, else the environment, else the cookie file (made if missing).
pub fn resolve(flag: Option<&str>) -> Result<String, CookieError> {
    if let Some(c) = flag {
        return non_empty(c);
    }
    if let Ok(c) = std::env::var(COOKIE_ENV) {
        return non_empty(&c);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or(CookieError::NoHome)?;
    from_file(&Path::new(&home).join(COOKIE_FILE))
}

fn non_empty(c: &str) -> Result<String, CookieError> {
    if c.is_empty() {
        Err(CookieError::EmptyGiven)
    } else {
        Ok(c.to_string())
    }
}

/// Reads the cookie file, or makes it (mode 0600) when it does not exist.
pub fn from_file(path: &Path) -> Result<String, CookieError> {
    match fs::read_to_string(path) {
        Ok(text) => return checked(path, &text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CookieError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let cookie: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(COOKIE_LEN)
        .map(char::from)
        .collect();
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(cookie.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|source| CookieError::Create {
                    path: path.to_path_buf(),
                    source,
                })?;
            log::info!("created the cookie file {}", path.display());
            Ok(cookie)
        }
        // Another process made it meanwhile: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(|source| CookieError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            checked(path, &text)
        }
        Err(source) => Err(CookieError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The file's cookie without surrounding whitespace; warns when others may read it.
fn checked(path: &Path, text: &str) -> Result<String, CookieError> {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        log::warn!(
            "the cookie file {} can be read by others (chmod 600 it)",
            path.display()
        );
    }
    let cookie = text.trim();
    if cookie.is_empty() {
        return Err(CookieError::Empty(path.to_path_buf()));
    }
    Ok(cookie.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("paxoskv-cookie-{:016x}", rand::random::<u64>()));
            fs::create_dir_all(&dir).expect("temporary directory");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_missing_file_is_made_with_mode_0600_and_20_alphanumerics() {
        let dir = TempDir::new();
        let path = dir.0.join(COOKIE_FILE);
        let made = from_file(&path).expect("made");
        assert_eq!(made.len(), COOKIE_LEN);
        assert!(made.chars().all(|c| c.is_ascii_alphanumeric()), "{made}");
        let mode = fs::metadata(&path).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(from_file(&path).expect("read back"), made);
    }

    #[test]
    fn an_existing_file_is_read_trimmed_and_an_empty_one_refused() {
        let dir = TempDir::new();
        let path = dir.0.join(COOKIE_FILE);
        fs::write(&path, "secret\n").expect("write");
        assert_eq!(from_file(&path).expect("read"), "secret");
        fs::write(&path, "  \n").expect("write");
        assert!(matches!(from_file(&path), Err(CookieError::Empty(_))));
    }

    #[test]
    fn a_named_cookie_file_is_read_and_never_made() {
        let dir = TempDir::new();
        let path = dir.0.join("cookie");
        let arg = |p: &Path| crate::cli::args::CookieArg {
            cookie: None,
            cookie_file: Some(p.to_path_buf()),
        };
        assert!(matches!(
            from_args(&arg(&path)),
            Err(CookieError::Missing(_))
        ));
        assert!(!path.exists());
        fs::write(&path, "from-file\n").expect("write");
        assert_eq!(from_args(&arg(&path)).expect("read"), "from-file");
    }

    #[test]
    fn the_flag_comes_first_and_may_not_be_empty() {
        assert_eq!(resolve(Some("given")).expect("flag"), "given");
        assert!(matches!(resolve(Some("")), Err(CookieError::EmptyGiven)));
    }
}
