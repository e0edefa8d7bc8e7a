//! A thin SQLite VFS over the default `unix` one that hands a commit's WAL frames to the
//! kernel in one `pwrite` instead of two per frame.
//!
//! SQLite writes each WAL frame as two calls, its 24-byte header and then its page (`wal.c`,
//! `walWriteOneFrame`): a command's commits wrote ~23 frames' worth of `pwrite`s, 14.5 % of the
//! relay's CPU at 500 commands/s, partial pages of the file's page cache each time
//! (BENCHMARKS.md, 2026-12-07 third sitting). SQLite has no option to batch them (its
//! batch-atomic writes are for rollback journals on F2FS), so this shim does, for the writer's
//! connection only:
//!
//! - a WAL file's writes that append to what is buffered are copied into a buffer;
//! - the buffer goes to the `unix` VFS as one write when the frame that commits a transaction
//!   has been written (its header's "database size" field is not zero; the page follows it),
//!   before any other operation on the WAL file (a read, a write elsewhere, a sync, a
//!   truncate, a size, a file control, a close), and when it would pass 124 KiB;
//! - the database file's `xShmBarrier` flushes its connection's WAL buffer too: SQLite
//!   publishes a commit to other connections by writing the WAL index header twice with that
//!   barrier between the copies (`walIndexWriteHdr`), and a reader accepts a header only when
//!   both copies agree, so no reader can see a commit whose frames are not in the file even
//!   if the commit frame were not recognised.
//!
//! What SQLite and other connections can observe is unchanged: the file holds every byte
//! written whenever another operation or another connection could look at it, and a failed
//! flush fails the write that caused it, so SQLite rolls the transaction back as it would
//! have. A crash loses only frames of a transaction that had not committed, which recovery
//! ignores anyway (it stops at the last frame with a valid commit). Durability
//! (`synchronous`) is untouched: syncs still go to the file, after a flush.
//!
//! Hand-written over `rusqlite::ffi` because no maintained crate wraps an existing VFS
//! (`sqlite-vfs` and the like implement a whole one); it is the relay's only `unsafe` code.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The VFS name connections open with ([`register`] first).
pub(super) const NAME: &str = "safestream-walbuf";
const NAME_C: &CStr = c"safestream-walbuf";

/// A buffer past this is written before it grows further (30 frames of 4 KiB). `unix`'s
/// `xWrite` takes at most 128 KiB − 1 per call (`seekAndWriteFd` masks the length with
/// `0x1ffff`; a longer write fails as `SQLITE_FULL`).
const BUFFER_MAX: usize = 124 << 10;

/// Where the wrapped file starts inside ours (SQLite allocates `szOsFile` bytes for both).
const INNER_OFFSET: usize = std::mem::size_of::<ShimFile>().next_multiple_of(16);

thread_local! {
    /// WAL writes this thread passed to the `unix` VFS, and the writes SQLite made. A
    /// connection runs on the thread that calls it, so a test reads its own counts here.
    static WRITES: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The WAL writes this thread handed to the `unix` VFS and the ones SQLite asked for.
#[cfg(test)]
pub(super) fn thread_writes() -> (u64, u64) {
    WRITES.with(|w| w.get())
}

/// Registers the VFS once per process (not as the default). `false` if it cannot be (no
/// `unix` VFS in this build): callers then open connections without it.
pub(super) fn register() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find` returns a registered VFS that lives as long as the
        // process (SQLite never frees "unix"); the copy we register is leaked, so it does too.
        unsafe {
            let unix = ffi::sqlite3_vfs_find(c"unix".as_ptr());
            if unix.is_null() {
                return false;
            }
            let mut vfs: ffi::sqlite3_vfs = *unix;
            vfs.zName = NAME_C.as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.pAppData = unix.cast();
            vfs.szOsFile = (INNER_OFFSET as c_int) + (*unix).szOsFile;
            vfs.xOpen = Some(shim_open);
            // The other entry points are `unix`'s own: none of them reads its VFS argument
            // (`NotUsed` in `os_unix.c`).
            let vfs = Box::leak(Box::new(vfs));
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    })
}

/// Our file: SQLite's header, our state, then the `unix` file at [`INNER_OFFSET`].
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    /// A WAL file: its buffer. A database file: null.
    buf: *mut WalBuffer,
    /// A WAL file: its connection's database file, if that is ours. A database file: its
    /// connection's WAL file while that is open. Each unlinks the other when it closes.
    peer: *mut ShimFile,
}

/// Frames written to a WAL file and not yet passed on.
struct WalBuffer {
    /// File offset of `data[0]`.
    start: i64,
    data: Vec<u8>,
    /// The last write was the header of a commit frame: flush after its page.
    commit_next: bool,
}

unsafe fn inner(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    f.cast::<u8>().add(INNER_OFFSET).cast()
}

unsafe fn inner_methods(f: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*inner(f)).pMethods
}

unsafe extern "C" fn shim_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix: *mut ffi::sqlite3_vfs = (*vfs).pAppData.cast();
    let Some(unix_open) = (*unix).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    let main = flags & ffi::SQLITE_OPEN_MAIN_DB != 0;
    if !wal && !main {
        // Journals and temporary files: the `unix` file itself, in our space (it fits).
        return unix_open(unix, name, file, flags, out_flags);
    }
    (*file).pMethods = std::ptr::null();
    let rc = unix_open(unix, name, inner(file), flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner(file)).pMethods.is_null() {
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    let me = file.cast::<ShimFile>();
    (*me).buf = std::ptr::null_mut();
    (*me).peer = std::ptr::null_mut();
    if wal {
        (*me).buf = Box::into_raw(Box::new(WalBuffer {
            start: 0,
            data: Vec::new(),
            commit_next: false,
        }));
        let db = ffi::sqlite3_database_file_object(name);
        if !db.is_null() && std::ptr::eq((*db).pMethods, &DB_METHODS) {
            let db = db.cast::<ShimFile>();
            (*db).peer = me;
            (*me).peer = db;
        }
        (*file).pMethods = &WAL_METHODS;
    } else {
        (*file).pMethods = &DB_METHODS;
    }
    ffi::SQLITE_OK
}

/// Passes the buffered frames on as one write; the buffer is empty afterwards either way.
unsafe fn flush(f: *mut ffi::sqlite3_file) -> c_int {
    let me = f.cast::<ShimFile>();
    let buf = &mut *(*me).buf;
    buf.commit_next = false;
    if buf.data.is_empty() {
        return ffi::SQLITE_OK;
    }
    let Some(write) = inner_methods(f).xWrite else {
        buf.data.clear();
        return ffi::SQLITE_IOERR_WRITE;
    };
    let len = buf.data.len() as c_int;
    let rc = write(inner(f), buf.data.as_ptr().cast(), len, buf.start);
    WRITES.with(|w| w.set((w.get().0 + 1, w.get().1)));
    buf.data.clear();
    rc
}

/// Flushes, then runs `op` unless the flush failed.
unsafe fn flushed(f: *mut ffi::sqlite3_file, op: impl FnOnce() -> c_int) -> c_int {
    match flush(f) {
        ffi::SQLITE_OK => op(),
        rc => rc,
    }
}

macro_rules! forward {
    ($f:expr, $method:ident, $missing:expr $(, $arg:expr)*) => {
        match inner_methods($f).$method {
            Some(m) => m(inner($f) $(, $arg)*),
            None => $missing,
        }
    };
}

unsafe extern "C" fn wal_write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    WRITES.with(|w| w.set((w.get().0, w.get().1 + 1)));
    let me = f.cast::<ShimFile>();
    let Ok(n) = usize::try_from(amt) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), n);
    {
        let buf = &*(*me).buf;
        let appends = buf.data.is_empty() || off == buf.start + buf.data.len() as i64;
        if !appends || buf.data.len() + n > BUFFER_MAX {
            let rc = flush(f);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
    }
    if n > BUFFER_MAX {
        return forward!(f, xWrite, ffi::SQLITE_IOERR_WRITE, data, amt, off);
    }
    let buf = &mut *(*me).buf;
    if buf.data.is_empty() {
        buf.start = off;
    }
    buf.data.extend_from_slice(bytes);
    if buf.commit_next {
        // The page of the frame that commits: the transaction is complete.
        return flush(f);
    }
    // A frame header: 24 bytes, the page number, then the database size in pages after a
    // commit, zero in every other frame (`walEncodeFrame`).
    buf.commit_next = n == 24 && bytes[4..8] != [0, 0, 0, 0];
    ffi::SQLITE_OK
}

unsafe extern "C" fn wal_close(f: *mut ffi::sqlite3_file) -> c_int {
    let me = f.cast::<ShimFile>();
    let rc = flush(f);
    drop(Box::from_raw((*me).buf));
    (*me).buf = std::ptr::null_mut();
    if !(*me).peer.is_null() {
        (*(*me).peer).peer = std::ptr::null_mut();
        (*me).peer = std::ptr::null_mut();
    }
    let closed = forward!(f, xClose, ffi::SQLITE_OK);
    (*f).pMethods = std::ptr::null();
    if rc != ffi::SQLITE_OK {
        rc
    } else {
        closed
    }
}

unsafe extern "C" fn wal_read(
    f: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    flushed(f, || {
        forward!(f, xRead, ffi::SQLITE_IOERR_READ, data, amt, off)
    })
}

unsafe extern "C" fn wal_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed(f, || {
        forward!(f, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
    })
}

unsafe extern "C" fn wal_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed(f, || forward!(f, xSync, ffi::SQLITE_IOERR_FSYNC, flags))
}

unsafe extern "C" fn wal_file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed(f, || forward!(f, xFileSize, ffi::SQLITE_IOERR_FSTAT, size))
}

unsafe extern "C" fn wal_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed(f, || {
        forward!(f, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
    })
}

unsafe extern "C" fn wal_fetch(
    f: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    *out = std::ptr::null_mut();
    flushed(f, || forward!(f, xFetch, ffi::SQLITE_OK, off, amt, out))
}

unsafe extern "C" fn db_close(f: *mut ffi::sqlite3_file) -> c_int {
    let me = f.cast::<ShimFile>();
    if !(*me).peer.is_null() {
        (*(*me).peer).peer = std::ptr::null_mut();
        (*me).peer = std::ptr::null_mut();
    }
    let rc = forward!(f, xClose, ffi::SQLITE_OK);
    (*f).pMethods = std::ptr::null();
    rc
}

unsafe extern "C" fn db_shm_barrier(f: *mut ffi::sqlite3_file) {
    let me = f.cast::<ShimFile>();
    let wal = (*me).peer;
    if !wal.is_null() && !(*(*wal).buf).data.is_empty() {
        // Only reached if a commit frame went unrecognised. The barrier cannot fail, and
        // publishing a commit whose frames are not in the file would let readers read
        // garbage: stopping the process is the safe answer (recovery keeps every commit).
        if flush(wal.cast()) != ffi::SQLITE_OK {
            eprintln!("safestream-relay: writing the SQLite WAL failed while publishing a commit; stopping");
            std::process::abort();
        }
    }
    if let Some(m) = inner_methods(f).xShmBarrier {
        m(inner(f));
    }
}

// The rest forwards as is.
unsafe extern "C" fn fwd_read(
    f: *mut ffi::sqlite3_file,
    d: *mut c_void,
    n: c_int,
    o: i64,
) -> c_int {
    forward!(f, xRead, ffi::SQLITE_IOERR_READ, d, n, o)
}
unsafe extern "C" fn fwd_write(
    f: *mut ffi::sqlite3_file,
    d: *const c_void,
    n: c_int,
    o: i64,
) -> c_int {
    forward!(f, xWrite, ffi::SQLITE_IOERR_WRITE, d, n, o)
}
unsafe extern "C" fn fwd_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    forward!(f, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}
unsafe extern "C" fn fwd_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    forward!(f, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}
unsafe extern "C" fn fwd_file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    forward!(f, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}
unsafe extern "C" fn fwd_lock(f: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    forward!(f, xLock, ffi::SQLITE_IOERR_LOCK, lock)
}
unsafe extern "C" fn fwd_unlock(f: *mut ffi::sqlite3_file, lock: c_int) -> c_int {
    forward!(f, xUnlock, ffi::SQLITE_IOERR_UNLOCK, lock)
}
unsafe extern "C" fn fwd_check_reserved(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    forward!(
        f,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}
unsafe extern "C" fn fwd_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    forward!(f, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}
unsafe extern "C" fn fwd_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    forward!(f, xSectorSize, 4096)
}
unsafe extern "C" fn fwd_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    forward!(f, xDeviceCharacteristics, 0)
}
unsafe extern "C" fn fwd_shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(
        f,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        page,
        size,
        extend,
        out
    )
}
unsafe extern "C" fn fwd_shm_lock(
    f: *mut ffi::sqlite3_file,
    off: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    forward!(f, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, off, n, flags)
}
unsafe extern "C" fn fwd_shm_barrier(f: *mut ffi::sqlite3_file) {
    if let Some(m) = inner_methods(f).xShmBarrier {
        m(inner(f));
    }
}
unsafe extern "C" fn fwd_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(f, xShmUnmap, ffi::SQLITE_OK, delete)
}
unsafe extern "C" fn fwd_fetch(
    f: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    *out = std::ptr::null_mut();
    forward!(f, xFetch, ffi::SQLITE_OK, off, amt, out)
}
unsafe extern "C" fn fwd_unfetch(f: *mut ffi::sqlite3_file, off: i64, p: *mut c_void) -> c_int {
    forward!(f, xUnfetch, ffi::SQLITE_OK, off, p)
}

/// A WAL file's methods.
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(fwd_lock),
    xUnlock: Some(fwd_unlock),
    xCheckReservedLock: Some(fwd_check_reserved),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(fwd_sector_size),
    xDeviceCharacteristics: Some(fwd_device_characteristics),
    xShmMap: Some(fwd_shm_map),
    xShmLock: Some(fwd_shm_lock),
    xShmBarrier: Some(fwd_shm_barrier),
    xShmUnmap: Some(fwd_shm_unmap),
    xFetch: Some(wal_fetch),
    xUnfetch: Some(fwd_unfetch),
};

/// A main database file's methods: `unix`'s, and the barrier flushes the WAL.
static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(db_close),
    xRead: Some(fwd_read),
    xWrite: Some(fwd_write),
    xTruncate: Some(fwd_truncate),
    xSync: Some(fwd_sync),
    xFileSize: Some(fwd_file_size),
    xLock: Some(fwd_lock),
    xUnlock: Some(fwd_unlock),
    xCheckReservedLock: Some(fwd_check_reserved),
    xFileControl: Some(fwd_file_control),
    xSectorSize: Some(fwd_sector_size),
    xDeviceCharacteristics: Some(fwd_device_characteristics),
    xShmMap: Some(fwd_shm_map),
    xShmLock: Some(fwd_shm_lock),
    xShmBarrier: Some(db_shm_barrier),
    xShmUnmap: Some(fwd_shm_unmap),
    xFetch: Some(fwd_fetch),
    xUnfetch: Some(fwd_unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

    fn writer(path: &str) -> Connection {
        assert!(register());
        let c = Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            NAME,
        )
        .unwrap();
        // A small page cache, so that large transactions spill frames before they commit.
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; \
             PRAGMA cache_size=16; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, body BLOB); CREATE INDEX t_k ON t (k); \
             CREATE TABLE u (id INTEGER PRIMARY KEY, n INTEGER);",
        )
        .unwrap();
        c
    }

    fn plain(path: &str) -> Connection {
        let c = Connection::open(path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    fn state(c: &Connection) -> (i64, i64, i64) {
        c.query_row(
            "SELECT COUNT(*), COALESCE(SUM(id), 0), COALESCE(SUM(length(body)), 0) FROM t",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    #[test]
    fn a_commit_reaches_the_wal_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let w = writer(path.to_str().unwrap());
        for i in 0..20i64 {
            let before = thread_writes();
            w.execute_batch("BEGIN").unwrap();
            w.execute(
                "INSERT INTO t (id, k, body) VALUES (?1, ?2, zeroblob(300))",
                params![i, format!("k{i}")],
            )
            .unwrap();
            w.execute("INSERT INTO u (n) VALUES (?1)", params![i])
                .unwrap();
            w.execute_batch("COMMIT").unwrap();
            let after = thread_writes();
            let (passed, asked) = (after.0 - before.0, after.1 - before.1);
            // Three b-trees written (t, t_k, u): at least three frames, two writes each.
            assert!(asked >= 6, "SQLite asked for {asked} writes");
            assert_eq!(passed, 1, "commit {i}: {asked} writes became {passed}");
        }
    }

    #[test]
    fn readers_and_recovery_see_exactly_the_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let p = path.to_str().unwrap();
        let w = writer(p);
        let reader = plain(p);
        let checkpointer = plain(p);
        let mut expect = (0i64, 0i64, 0i64);
        for i in 1..=400i64 {
            // Bodies from 10 bytes to ~12 KiB (overflow pages); every 97th transaction is
            // larger than the page cache (its frames spill and are read back before the commit).
            let rows: i64 = if i % 97 == 0 { 120 } else { 1 + i % 3 };
            w.execute_batch("BEGIN").unwrap();
            let mut added = (0, 0, 0);
            for r in 0..rows {
                let id = i * 1000 + r;
                let len = 10 + (id * 7919) % 12_000;
                w.execute(
                    "INSERT INTO t (id, k, body) VALUES (?1, ?2, zeroblob(?3))",
                    params![id, format!("key-{}", id % 13), len],
                )
                .unwrap();
                added = (added.0 + 1, added.1 + id, added.2 + len);
            }
            if i % 11 == 0 {
                w.execute_batch("ROLLBACK").unwrap();
            } else {
                if i % 5 == 0 {
                    w.execute("DELETE FROM t WHERE id = ?1", params![(i - 1) * 1000])
                        .unwrap();
                    let left = w
                        .query_row(
                            "SELECT 1 FROM t WHERE id = ?1",
                            params![(i - 1) * 1000],
                            |_| Ok(()),
                        )
                        .optional()
                        .unwrap();
                    assert_eq!(left, None, "a deleted row is still there");
                }
                w.execute_batch("COMMIT").unwrap();
                expect = (expect.0 + added.0, expect.1 + added.1, expect.2 + added.2);
                if i % 5 == 0 {
                    // Whether the previous transaction's first row survived its own
                    // rollback decides what the delete removed.
                    expect = state(&w);
                }
            }
            // Another connection (the default VFS) sees exactly what was committed.
            assert_eq!(state(&reader), expect, "after transaction {i}");
            assert_eq!(state(&w), expect);
            if i % 40 == 0 {
                // Copy the WAL into the database; the next write starts the WAL over.
                checkpointer
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .unwrap();
            }
            if i % 150 == 0 {
                // What a crash right now would leave: the files as they are, opened fresh
                // (recovery rebuilds the WAL index from the WAL's frames and checksums).
                let copy = dir.path().join(format!("crash{i}.db"));
                std::fs::copy(&path, &copy).unwrap();
                std::fs::copy(format!("{p}-wal"), format!("{}-wal", copy.display())).unwrap();
                let c = plain(copy.to_str().unwrap());
                assert_eq!(state(&c), expect, "recovered at {i}");
                let ok: String = c
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(ok, "ok");
            }
        }
        let ok: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(w);
        assert_eq!(state(&plain(p)), expect);
    }
}
