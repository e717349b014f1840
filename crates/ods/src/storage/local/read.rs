//! Reading blob files into buffers: a block from the file position, a range with one
//! `pread`, a slice of a blob held whole, and the stream of blocks a reader thread sends.

use std::fs::File;
use std::io::{self, Read};

use bytes::Bytes;

/// Reads exactly `n` bytes from the file position into a new buffer (which, unlike a
/// zero-filled one, is not written twice).
pub(super) fn read_block(file: &mut File, n: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(n);
    Read::take(&mut *file, n as u64).read_to_end(&mut buf)?;
    if buf.len() < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob is shorter than its recorded size",
        ));
    }
    Ok(Bytes::from(buf))
}

/// Opens the blob and reads `n` bytes at `offset` with one `pread` into a new buffer
/// (more only if the kernel returns a short read; no zero-filling first).
pub(super) fn pread_whole(file: &File, offset: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        let at = offset + buf.len() as u64;
        let got = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob is shorter than its recorded size",
            ));
        }
    }
    Ok(Bytes::from(buf))
}

/// `len` bytes at `offset` of a blob held whole.
pub(super) fn part_of(whole: &Bytes, offset: u64, len: u64) -> io::Result<Bytes> {
    match offset.checked_add(len) {
        Some(end) if end <= whole.len() as u64 => Ok(whole.slice(offset as usize..end as usize)),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob is shorter than its recorded size",
        )),
    }
}

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
