//! Where an adapter keeps [`StoredTokens`] between runs.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::token::{RestoreError, StoredTokens};

/// Durable storage for the flow's tokens. `save` must not return before the tokens are safe:
/// the flow releases a rotated refresh token's access token only after it.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored tokens, or `None` when nothing is stored.
    fn load(&self) -> Result<Option<StoredTokens>, StoreError>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError>;
    /// Deletes the stored tokens.
    fn clear(&self) -> Result<(), StoreError>;
}

/// The largest token file [`FileStore::load`](TokenStore::load) reads: 1 MiB. Stored tokens
/// take a few kilobytes; anything much larger is not a token file, and reading it whole would
/// only cost memory.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024 * 1024;

/// Why a [`TokenStore`] failed. Never contains a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The stored data is unreadable; it is left as it is for a person to look at.
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        source: RestoreError,
    },
    /// Something other than a regular file is at the path (a FIFO, a device, a directory,
    /// a socket): it was not read, since reading it could block forever or never end.
    NotAFile {
        /// The path concerned.
        path: PathBuf,
        /// What is there instead, in a word (`a FIFO`, `a directory`, …).
        found: &'static str,
    },
    /// The file is larger than [`MAX_TOKEN_FILE_BYTES`]; it was not read.
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The store shared by replicas ([`ClientBuilder::replicas`](crate::adapters::ClientBuilder::replicas)),
    /// or its change feed, failed.
    Shared {
        /// What the client was doing: `acquiring the lease`, `writing the tokens`, …
        during: &'static str,
        /// The store's own error (whose message must carry no token, as this type's never
        /// does).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A failure of the shared store `during` an operation.
    pub(crate) fn shared(
        during: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Shared {
            during,
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => {
                write!(f, "token store {}: {source}", path.display())
            }
            StoreError::Corrupt { path, source } => write!(
                f,
                "token store {} is corrupt and was left untouched: {source}",
                path.display()
            ),
            StoreError::NotAFile { path, found } => write!(
                f,
                "token store {} is {found}, not a regular file, and was not read",
                path.display()
            ),
            StoreError::TooLarge { path, limit } => write!(
                f,
                "token store {} is larger than {limit} bytes and was not read",
                path.display()
            ),
            StoreError::Shared { during, source } => {
                write!(f, "shared token store failed {during}: {source}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { source, .. } => Some(source),
            StoreError::Shared { source, .. } => Some(source.as_ref()),
            StoreError::NotAFile { .. } | StoreError::TooLarge { .. } => None,
        }
    }
}

/// Keeps tokens in memory only: for tests, and for processes that log in at every start.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<StoredTokens>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

/// Keeps tokens in a JSON file ([`StoredTokens::to_json`]), replaced atomically on every save.
///
/// * `save` writes a temporary file next to the target (same directory, so same file
///   system), flushes it to disk, renames it over the target and, on Unix, flushes the
///   directory too: after a crash the file holds either the old tokens or the new ones, never
///   a mix. On Unix the file is created readable and writable by its owner only (`0600`).
/// * `load` of a missing file is `Ok(None)`. A file that cannot be read is
///   [`StoreError::Io`]; one that holds something else than stored tokens is
///   [`StoreError::Corrupt`]. Neither is ever deleted or repaired by `load`.
/// * `load` reads regular files only, and none larger than [`MAX_TOKEN_FILE_BYTES`]: anything
///   else at the path (a FIFO, a device, a directory) is [`StoreError::NotAFile`], a larger
///   file [`StoreError::TooLarge`], and neither is read. On Unix the file is opened without
///   blocking (`O_NONBLOCK`, which opening a FIFO would otherwise do until a writer came) and
///   judged by the metadata of the opened handle, so that nothing swapped in at the path
///   between a check and the open is ever read.
/// * `save` always writes, whatever the file held before. A host that wants to keep a corrupt
///   file for inspection must look at `load`'s error before logging in again (which saves);
///   the adapters' clients refuse to start on such an error, so that decision stays with the
///   application.
/// * `clear` deletes the file; a missing file is not an error.
///
/// The directory must exist. Several processes may share the file; the last save wins.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The directory holding the file (`.` for a bare file name).
    fn directory(&self) -> &Path {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    }

    /// A temporary path next to the target, unique within this process and across processes.
    fn temporary_path(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".to_owned());
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.directory()
            .join(format!(".{name}.{}.{unique}.tmp", std::process::id()))
    }

    fn write_temporary(&self, temporary: &Path, contents: &[u8]) -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(temporary)?;
        file.write_all(contents)?;
        file.sync_all()
    }

    /// The file's bytes, `None` when there is no file; see the type's documentation for what
    /// is refused unread.
    fn read_bounded(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Opening a FIFO for reading waits for a writer; without blocking it returns at
            // once. Reads of a regular file are not affected by the flag.
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = match options.open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.io_error(error)),
        };
        // The handle's own metadata: what was opened, not what is at the path now.
        let metadata = file.metadata().map_err(|e| self.io_error(e))?;
        if !metadata.is_file() {
            return Err(StoreError::NotAFile {
                path: self.path.clone(),
                found: describe(&metadata.file_type()),
            });
        }
        let too_large = || StoreError::TooLarge {
            path: self.path.clone(),
            limit: MAX_TOKEN_FILE_BYTES,
        };
        if metadata.len() > MAX_TOKEN_FILE_BYTES {
            return Err(too_large());
        }
        // Bounded again while reading: the file may grow after its size was read.
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        file.take(MAX_TOKEN_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_error(e))?;
        if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return Err(too_large());
        }
        Ok(Some(bytes))
    }

    /// Makes a rename or a deletion in the directory durable (Unix; elsewhere a no-op).
    fn sync_directory(&self) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(self.directory())?.sync_all()?;
        }
        Ok(())
    }
}

/// What a file that is not a regular file is, for [`StoreError::NotAFile`].
fn describe(kind: &fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    "not a regular file"
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        let bytes = match self.read_bounded() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(error) => return Err(error),
        };
        StoredTokens::from_json(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), StoreError> {
        let temporary = self.temporary_path();
        let written = self
            .write_temporary(&temporary, &tokens.to_json())
            .and_then(|()| fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            // Best effort: a leftover temporary file holds tokens.
            let _ = fs::remove_file(&temporary);
            return Err(self.io_error(error));
        }
        self.sync_directory().map_err(|e| self.io_error(e))
    }

    fn clear(&self) -> Result<(), StoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => self.sync_directory().map_err(|e| self.io_error(e)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.io_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantKind;
    use crate::secret::{AccessToken, RefreshToken};
    use crate::time::UnixTime;
    use crate::token::{RestoreError, STORED_TOKENS_VERSION};

    fn sample(refresh: &str) -> StoredTokens {
        StoredTokens {
            version: STORED_TOKENS_VERSION,
            grant: GrantKind::Password,
            access_token: Some(AccessToken::new("AT-1")),
            expires_at: Some(UnixTime::from_secs(1_700_000_600)),
            refresh_token: Some(RefreshToken::new(refresh)),
            refresh_token_expires_at: None,
            scope: Some("api offline_access".into()),
            id_token: None,
            issued_at: UnixTime::from_secs(1_700_000_000),
            extra: serde_json::Map::new(),
        }
    }

    fn only_the_target(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_missing_file_is_nothing_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("tokens.json"));
        assert!(store.load().unwrap().is_none());
        store.clear().unwrap();
    }

    #[test]
    fn saves_replace_and_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("tokens.json"));
        store.save(&sample("RT-1")).unwrap();
        store.save(&sample("RT-2")).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample("RT-2")));
        // No temporary file is left behind.
        assert_eq!(only_the_target(dir.path()), ["tokens.json"]);
        store.clear().unwrap();
        assert!(store.load().unwrap().is_none());
        assert!(only_the_target(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        // Even over a file that others could read.
        fs::write(&path, b"{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        FileStore::new(&path).save(&sample("RT-1")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, b"{\"version\":1,\"refresh_token\":\"RT-SECRET\"").unwrap();
        let store = FileStore::new(&path);
        let error = store.load().unwrap_err();
        assert!(matches!(
            error,
            StoreError::Corrupt {
                source: RestoreError::Json { .. },
                ..
            }
        ));
        assert!(!error.to_string().contains("RT-SECRET"));
        // Loading again does not change anything.
        assert!(store.load().is_err());
        assert!(fs::read(&path).unwrap().ends_with(b"RT-SECRET\""));
        // Saving is the caller's decision, and it works.
        store.save(&sample("RT-3")).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample("RT-3")));
    }

    #[test]
    fn a_future_version_is_corrupt_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, br#"{"version":99}"#).unwrap();
        let error = FileStore::new(&path).load().unwrap_err();
        assert!(matches!(
            error,
            StoreError::Corrupt {
                source: RestoreError::UnsupportedVersion(99),
                ..
            }
        ));
    }

    #[test]
    fn an_unreadable_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: not a file, and not read.
        let store = FileStore::new(dir.path());
        assert!(matches!(
            store.load(),
            Err(StoreError::NotAFile {
                found: "a directory",
                ..
            })
        ));
        let missing_dir = FileStore::new(dir.path().join("absent").join("tokens.json"));
        assert!(matches!(
            missing_dir.save(&sample("RT-1")),
            Err(StoreError::Io { .. })
        ));
    }

    /// `load` on another thread, failing the test rather than hanging it if it blocks.
    fn load_within_seconds(store: FileStore) -> Result<Option<StoredTokens>, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(store.load());
        });
        receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("load returned within 10 s instead of blocking")
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo failed: {made}");
        let error = load_within_seconds(FileStore::new(&path)).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::NotAFile {
                    found: "a FIFO",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("is a FIFO, not a regular file"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_refused_without_reading_it() {
        // `/dev/null` reads as empty; were it read, the error would be a corrupt file.
        let error = load_within_seconds(FileStore::new("/dev/null")).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::NotAFile {
                    found: "a device",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_file_over_the_bound_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        // Valid stored tokens, padded past the bound: refused for its size, not its content.
        let mut json = sample("RT-1").to_json();
        json.resize(MAX_TOKEN_FILE_BYTES as usize + 1, b' ');
        fs::write(&path, &json).unwrap();
        let error = load_within_seconds(FileStore::new(&path)).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::TooLarge {
                    limit: MAX_TOKEN_FILE_BYTES,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("larger than 1048576 bytes"),
            "{error}"
        );
        // At the bound exactly, it is read.
        json.truncate(MAX_TOKEN_FILE_BYTES as usize);
        fs::write(&path, &json).unwrap();
        assert_eq!(FileStore::new(&path).load().unwrap(), Some(sample("RT-1")));
    }
}
