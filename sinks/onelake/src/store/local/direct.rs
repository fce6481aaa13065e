//! Writing a data file past the page cache (direct I/O, `O_DIRECT` on Linux).
//!
//! Why: a data file is written once, fsynced before it is published, and never read back by this
//! process, so copying it into the page cache first buys nothing and costs a kernel copy of every
//! byte into freshly allocated cache pages. On the project's 2-core VMs that copy was the largest
//! single cost of publishing (11% of `mirror`'s CPU in an initial sync; `dd` of 1 GB: 3.6 s of
//! system time buffered, 0.11 s direct), and on any machine it evicts cache that others could use.
//! Databases write their large sequential files the same way (RocksDB's
//! `use_direct_io_for_flush_and_compaction`, PostgreSQL's `debug_io_direct`).
//!
//! Direct I/O needs the memory address, the file offset and the length of every write aligned to
//! the device's logical block size. The bytes therefore go through a 4 KiB-aligned bounce buffer
//! kept per thread (4 KiB covers 512-byte and 4 KiB devices); the last partial block is padded with
//! zeros and the file is cut back to its real length afterwards. Where the file system refuses
//! direct I/O (tmpfs, some network and FUSE file systems answer `EINVAL`), the file is written the
//! ordinary way: the result is the same file.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Files smaller than this are written the ordinary way: the gain is nil and a small file (a
/// checkpoint, `_metadata.json`) is often read back soon.
pub const MIN_DIRECT_BYTES: usize = 1 << 20;

/// Creates (or truncates) `path` and writes `bytes` into it, with direct I/O when the file is large
/// enough and the file system allows it. The caller fsyncs the returned file.
pub fn create_and_write(path: &Path, bytes: &[u8]) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    if bytes.len() >= MIN_DIRECT_BYTES {
        match linux::write_direct(path, bytes) {
            Ok(file) => return Ok(file),
            // Direct I/O refused (at open or at the first write): write it the ordinary way.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    Ok(file)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
    use std::cell::RefCell;
    use std::fs::{File, OpenOptions};
    use std::io::{self, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// Alignment of addresses, offsets and lengths.
    const ALIGN: usize = 4096;
    /// Bytes written per `write` call (a multiple of `ALIGN`).
    const CHUNK: usize = 1 << 20;

    /// A zeroed, `ALIGN`-aligned buffer of `CHUNK` bytes.
    struct Bounce {
        ptr: *mut u8,
    }

    impl Bounce {
        fn layout() -> Layout {
            // A bug only: both are non-zero constants and ALIGN is a power of two.
            Layout::from_size_align(CHUNK, ALIGN).expect("constant layout")
        }

        fn new() -> Self {
            let layout = Self::layout();
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc(layout) };
            if ptr.is_null() {
                handle_alloc_error(layout);
            }
            Self { ptr }
        }

        fn as_mut_slice(&mut self) -> &mut [u8] {
            // SAFETY: `ptr` points to `CHUNK` bytes owned by `self`, borrowed mutably once here.
            // Uninitialised bytes are never read: callers write a prefix before writing it out.
            unsafe { std::slice::from_raw_parts_mut(self.ptr, CHUNK) }
        }
    }

    impl Drop for Bounce {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with the same layout.
            unsafe { dealloc(self.ptr, Self::layout()) }
        }
    }

    thread_local! {
        /// One bounce buffer per thread, kept: its pages stay mapped between files.
        static BOUNCE: RefCell<Option<Bounce>> = const { RefCell::new(None) };
    }

    pub(super) fn write_direct(path: &Path, bytes: &[u8]) -> io::Result<File> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        BOUNCE.with(|cell| -> io::Result<()> {
            let mut slot = cell.borrow_mut();
            let bounce = slot.get_or_insert_with(Bounce::new).as_mut_slice();
            for part in bytes.chunks(CHUNK) {
                let padded = part.len().next_multiple_of(ALIGN);
                bounce[..part.len()].copy_from_slice(part);
                bounce[part.len()..padded].fill(0);
                file.write_all(&bounce[..padded])?;
            }
            Ok(())
        })?;
        if !bytes.len().is_multiple_of(ALIGN) {
            file.set_len(bytes.len() as u64)?;
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around the block and chunk boundaries come back byte for byte, with the right length.
    #[test]
    fn files_of_any_length_come_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            MIN_DIRECT_BYTES - 1,
            MIN_DIRECT_BYTES,
            MIN_DIRECT_BYTES + 1,
            MIN_DIRECT_BYTES + 4095,
            MIN_DIRECT_BYTES + 4096,
            3 * MIN_DIRECT_BYTES + 17,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            let path = dir.path().join(format!("f{i}"));
            // A file that was longer before is cut to the new length.
            std::fs::write(&path, vec![7u8; size + 9000]).unwrap();
            let file = create_and_write(&path, &bytes).unwrap();
            file.sync_all().unwrap();
            drop(file);
            let back = std::fs::read(&path).unwrap();
            assert_eq!(back.len(), size, "size {size}");
            assert!(back == bytes, "content of a {size}-byte file");
        }
    }
}
