//! Where an adapter keeps [`StoredTokens`] between runs.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

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
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { source, .. } => Some(source),
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

/// Keeps tokens in a JSON file (placeholder: implemented in the adapters change).
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
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        Ok(None)
    }

    fn save(&self, _tokens: &StoredTokens) -> Result<(), StoreError> {
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
