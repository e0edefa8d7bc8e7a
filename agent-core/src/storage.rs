//! Crash-safe state files: the [`Storage`] seam, on disk and in memory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Storage of named blobs. `save` is atomic: after a crash a reader sees the old content or
/// the new one, never a mix. `append` is durable when it returns; after a crash during one,
/// a reader may see part of the appended bytes at the end (the ledger's journal ignores a
/// torn last record).
pub(crate) trait Storage: Send + Sync {
    /// The content of `name`, or `None` when it was never written.
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the content of `name`.
    fn save(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Adds `data` at the end of `name` (creating it) and syncs it.
    fn append(&self, name: &str, data: &[u8]) -> io::Result<()>;
}

/// Files in a directory: write `name.tmp`, fsync it, rename it over `name`, fsync the
/// directory.
pub(crate) struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    pub(crate) fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

impl Storage for FileStorage {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir.join(name)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        self.sync_dir();
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        let created = !path.exists();
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(data)?;
        f.sync_data()?;
        if created {
            self.sync_dir();
        }
        Ok(())
    }
}

impl FileStorage {
    /// Makes a rename or a new file's name durable. Not every platform lets a directory be
    /// opened.
    fn sync_dir(&self) {
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }
}

/// In-memory storage for tests. Clones share the same files, so a test can "restart" an
/// agent on the state its previous incarnation left.
#[derive(Clone, Default)]
#[allow(dead_code)]
pub(crate) struct MemoryStorage {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    fail_saves: Arc<std::sync::atomic::AtomicBool>,
}

#[allow(dead_code)]
impl MemoryStorage {
    pub(crate) fn set_fail_saves(&self, fail: bool) {
        self.fail_saves
            .store(fail, std::sync::atomic::Ordering::SeqCst);
    }
    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.files.lock().ok()?.get(name).cloned()
    }

    /// Storage holding these files (the model checker's durable state).
    #[cfg(feature = "sim")]
    pub(crate) fn with_files(files: &std::collections::BTreeMap<String, Vec<u8>>) -> Self {
        let s = Self::default();
        if let Ok(mut f) = s.files.lock() {
            f.extend(files.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        s
    }

    /// Every file, by name.
    #[cfg(feature = "sim")]
    pub(crate) fn files(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.files
            .lock()
            .map(|f| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

impl Storage for MemoryStorage {
    fn load(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .files
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .get(name)
            .cloned())
    }

    fn save(&self, name: &str, data: &[u8]) -> io::Result<()> {
        if self.fail_saves.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("disk full (test)"));
        }
        self.files
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .insert(name.to_owned(), data.to_vec());
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        if self.fail_saves.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("disk full (test)"));
        }
        self.files
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .entry(name.to_owned())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_storage_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::open(dir.path().join("state")).unwrap();
        assert_eq!(s.load("a.json").unwrap(), None);
        s.save("a.json", b"one").unwrap();
        s.save("a.json", b"two").unwrap();
        assert_eq!(s.load("a.json").unwrap().as_deref(), Some(&b"two"[..]));
        assert!(!dir.path().join("state/a.json.tmp").exists());
        s.append("j", b"one\n").unwrap();
        s.append("j", b"two\n").unwrap();
        assert_eq!(s.load("j").unwrap().as_deref(), Some(&b"one\ntwo\n"[..]));
    }
}
