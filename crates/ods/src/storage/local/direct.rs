//! Writing blob files past the page cache (`O_DIRECT`) where the filesystem allows
//! it. Aligned blocks go straight to the disk while the next bytes arrive, so the
//! kernel spends no copy into the page cache, no writeback runs behind the writer,
//! and the fsync before a commit has almost nothing left to flush. What is not
//! aligned (a file's last short block) takes the ordinary buffered path. A filesystem
//! that refuses `O_DIRECT` (tmpfs before Linux 6.6, some network filesystems), at open
//! or at the first write, gets the buffered path for everything; nothing else changes.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use bytes::{Buf, BytesMut};

/// Alignment of a direct write's buffer, offset and length (the page size covers
/// every logical block size a disk has).
pub const ALIGN: usize = 4096;
/// Bytes per direct write of a sequential writer, and of a pooled buffer.
pub const BLOCK: usize = 1024 * 1024;
/// Blocks a sequential writer has in flight before `write` waits for the disk.
const DEPTH: usize = 4;
/// Spare buffers kept for the next writers (more are freed).
const POOL: usize = 8;

/// A buffer of `BLOCK` bytes starting at an `ALIGN` boundary: an over-allocated
/// vector and the aligned window inside it (no unsafe code).
pub struct Aligned {
    buf: Vec<u8>,
    start: usize,
}

static SPARE: Mutex<Vec<Aligned>> = Mutex::new(Vec::new());

impl Aligned {
    /// A pooled buffer, or a new one.
    pub fn take() -> Aligned {
        let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop();
        spare.unwrap_or_else(|| {
            let buf = vec![0u8; BLOCK + ALIGN];
            let start = buf.as_ptr().align_offset(ALIGN);
            Aligned { buf, start }
        })
    }

    /// Returns the buffer to the pool.
    pub fn give_back(self) {
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < POOL {
            spare.push(self);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + BLOCK]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + BLOCK]
    }
}

/// An empty buffer with room for `len` bytes that start at an `ALIGN` boundary:
/// filled and frozen, it goes to a direct write without a copy (`AtOffsets`).
pub fn aligned_buffer(len: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(len + ALIGN);
    let pad = b.as_ptr().align_offset(ALIGN);
    b.resize(pad, 0);
    b.advance(pad);
    b
}

/// Opens `path` (which exists) a second time for direct writes; `None` when this
/// filesystem does not take them.
pub fn open(path: &Path) -> Option<File> {
    let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
    File::options()
        .write(true)
        .custom_flags(direct)
        .open(path)
        .ok()
}

/// A direct write was refused in a way the buffered path will not be (`EINVAL`: the
/// filesystem or the device does not take this alignment).
fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// Random-order writes of one file by any number of threads (a transfer's chunks):
/// aligned ones direct, through a pooled buffer, the rest buffered.
pub struct AtOffsets {
    direct: Option<File>,
    /// Cleared after the first refused direct write.
    usable: AtomicBool,
}

impl AtOffsets {
    pub fn new(path: &Path) -> AtOffsets {
        let direct = open(path);
        let usable = AtomicBool::new(direct.is_some());
        AtOffsets { direct, usable }
    }

    /// Writes `data` at `offset` of `file` (the same file, opened buffered).
    pub fn write_at(&self, file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        let aligned = offset.is_multiple_of(ALIGN as u64) && data.len().is_multiple_of(ALIGN);
        if let Some(direct) = &self.direct
            && aligned
            && self.usable.load(Ordering::Relaxed)
        {
            let outcome = if (data.as_ptr() as usize).is_multiple_of(ALIGN) {
                direct.write_all_at(data, offset)
            } else {
                copied(direct, offset, data)
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if refused(&e) => {
                    tracing::info!(
                        "this filesystem refuses direct writes; writing through the page cache"
                    );
                    self.usable.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        file.write_all_at(data, offset)
    }
}

/// A direct write of `data` (not aligned in memory) through pooled aligned buffers.
fn copied(direct: &File, offset: u64, data: &[u8]) -> io::Result<()> {
    let mut buf = Aligned::take();
    let mut done = 0;
    let mut outcome = Ok(());
    while done < data.len() {
        let n = (data.len() - done).min(BLOCK);
        buf.bytes_mut()[..n].copy_from_slice(&data[done..done + n]);
        if let Err(e) = direct.write_all_at(&buf.bytes()[..n], offset + done as u64) {
            outcome = Err(e);
            break;
        }
        done += n;
    }
    buf.give_back();
    outcome
}

/// One file written front to back (an upload's staging file): bytes are gathered
/// into aligned blocks that a thread of its own writes direct, `DEPTH` at most in
/// flight, while the caller goes on. The thread starts with the first full block, so
/// a small file costs none. `finish` writes the rest: its aligned part direct, the
/// unaligned tail buffered.
pub struct Sequential {
    current: Aligned,
    filled: usize,
    /// Bytes handed to the disk so far (the next block's offset).
    sent: u64,
    /// The direct handle, until the thread takes it.
    direct: Option<File>,
    /// The buffered handle the thread falls back to.
    plain: File,
    thread: Option<Thread>,
}

/// The thread writing full blocks, and the way buffers come back from it.
struct Thread {
    in_flight: usize,
    to_disk: mpsc::SyncSender<(Aligned, u64)>,
    spare: mpsc::Receiver<Aligned>,
    /// Gives back the direct handle (`None` once the filesystem refused it).
    handle: JoinHandle<io::Result<Option<File>>>,
}

impl Sequential {
    /// Writes `file` (opened buffered) through `direct`, a direct handle to it.
    pub fn new(file: &File, direct: File) -> io::Result<Sequential> {
        Ok(Sequential {
            current: Aligned::take(),
            filled: 0,
            sent: 0,
            direct: Some(direct),
            plain: file.try_clone()?,
            thread: None,
        })
    }

    pub fn write(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = (BLOCK - self.filled).min(buf.len());
            self.current.bytes_mut()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
            self.filled += n;
            buf = &buf[n..];
            if self.filled == BLOCK {
                self.send_current()?;
            }
        }
        Ok(())
    }

    /// Hands the full current block to the thread and takes a free one.
    fn send_current(&mut self) -> io::Result<()> {
        if self.thread.is_none() {
            self.thread = Some(self.start()?);
        }
        let t = self.thread.as_mut().expect("started above");
        let next = if t.in_flight < DEPTH {
            t.in_flight += 1;
            Some(Aligned::take())
        } else {
            t.spare.recv().ok()
        };
        let sent = match next {
            Some(next) => {
                let block = std::mem::replace(&mut self.current, next);
                t.to_disk.send((block, self.sent)).is_ok()
            }
            None => false,
        };
        if !sent {
            return Err(self.stopped());
        }
        self.sent += BLOCK as u64;
        self.filled = 0;
        Ok(())
    }

    fn start(&mut self) -> io::Result<Thread> {
        let mut direct = self.direct.take();
        let plain = self.plain.try_clone()?;
        let (to_disk, blocks) = mpsc::sync_channel::<(Aligned, u64)>(DEPTH);
        let (back, spare) = mpsc::channel::<Aligned>();
        let handle = std::thread::Builder::new()
            .name("ods-direct".into())
            .spawn(move || -> io::Result<Option<File>> {
                for (block, offset) in blocks {
                    write_or_fall_back(&mut direct, &plain, block.bytes(), offset)?;
                    // The writer may be gone (it failed, or is finishing): keep nothing.
                    if back.send(block).is_err() {
                        break;
                    }
                }
                Ok(direct)
            })?;
        Ok(Thread {
            in_flight: 0,
            to_disk,
            spare,
            handle,
        })
    }

    /// The thread's error (it stopped early).
    fn stopped(&mut self) -> io::Error {
        match self.thread.take().map(|t| {
            drop(t.to_disk);
            t.handle.join()
        }) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the direct writer stopped"),
        }
    }

    /// Writes what is left and waits for the thread: then every byte is written,
    /// though not yet synced.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(t) = self.thread.take() {
            drop(t.to_disk);
            self.direct = t
                .handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the direct writer panicked")))?;
            while let Ok(b) = t.spare.try_recv() {
                b.give_back();
            }
        }
        let whole = self.filled - self.filled % ALIGN;
        let data = self.current.bytes();
        write_or_fall_back(&mut self.direct, &self.plain, &data[..whole], self.sent)?;
        self.plain
            .write_all_at(&data[whole..self.filled], self.sent + whole as u64)?;
        self.current.give_back();
        Ok(())
    }
}

/// Writes `data` at `offset` direct while `direct` is there; a refused direct write
/// drops it for good and writes buffered into `plain`.
fn write_or_fall_back(
    direct: &mut Option<File>,
    plain: &File,
    data: &[u8],
    offset: u64,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if let Some(d) = direct {
        match d.write_all_at(data, offset) {
            Err(e) if refused(&e) => {
                tracing::info!(
                    "this filesystem refuses direct writes; writing through the page cache"
                );
                *direct = None;
            }
            other => return other,
        }
    }
    plain.write_all_at(data, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    #[test]
    fn sequential_writes_every_byte_of_any_length() {
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [0, 1, 4095, 4096, BLOCK, BLOCK + 4097, 5 * BLOCK + 1234]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("f{i}"));
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            let Some(d) = open(&path) else {
                eprintln!(
                    "no direct writes on this filesystem; the buffered path is tested elsewhere"
                );
                return;
            };
            let data = pattern(len);
            let mut w = Sequential::new(&file, d).unwrap();
            for piece in data.chunks(7919) {
                w.write(piece).unwrap();
            }
            w.finish().unwrap();
            file.sync_all().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn chunks_in_any_order_aligned_direct_and_the_tail_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        let size = 2 * BLOCK + 100;
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(size as u64).unwrap();
        let data = pattern(size);
        let w = AtOffsets::new(&path);
        for idx in [2, 0, 1, 0] {
            let from = idx * BLOCK;
            let to = (from + BLOCK).min(size);
            w.write_at(&file, from as u64, &data[from..to]).unwrap();
        }
        // A chunk gathered in an aligned buffer is written from it.
        let mut b = aligned_buffer(BLOCK);
        b.extend_from_slice(&data[BLOCK..2 * BLOCK]);
        let b = b.freeze();
        assert!((b.as_ptr() as usize).is_multiple_of(ALIGN));
        w.write_at(&file, BLOCK as u64, &b).unwrap();
        assert_eq!(
            w.usable.load(Ordering::Relaxed),
            w.direct.is_some(),
            "aligned chunks were refused direct where the filesystem opened the file direct"
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
