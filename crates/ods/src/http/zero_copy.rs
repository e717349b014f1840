//! Zero-copy download bodies on plain-HTTP connections. A download whose bytes were
//! read from a blob file registers both, the bytes and the file, with its connection
//! (`ZeroCopy`, a request extension). When hyper then writes a slice lying inside
//! those bytes, the connection (`Conn`) sends the same range of the file with
//! `sendfile(2)`, so the body is never copied from user space into the socket (what
//! nginx does with `sendfile on`). The headers before it go out with `MSG_MORE`, so
//! head and body still share packets.
//!
//! It cannot send wrong bytes: a blob's content never changes, and the registration
//! holds the body's memory, so no other buffer can have its address meanwhile. A body
//! copied or transformed on its way (or any other write) is not recognised and goes
//! out as written. TLS connections are not wrapped. The bytes sent this way are
//! counted in `ods_http_zero_copy_bytes_total`.

use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The body a connection may send from its file.
struct Registered {
    data: Bytes,
    file: Arc<File>,
    /// Where `data` starts in `file`.
    offset: u64,
}

type Slot = Arc<Mutex<Option<Registered>>>;

/// The registration handle of one plain-HTTP connection, in each request's extensions.
#[derive(Clone)]
pub struct ZeroCopy(Slot);

impl ZeroCopy {
    /// `data` is `file`'s content from `offset` on: its slices may be sent from the
    /// file. Replaces the previous registration of this connection.
    pub fn register(&self, data: &Bytes, file: Arc<File>, offset: u64) {
        *lock(&self.0) = Some(Registered {
            data: data.clone(),
            file,
            offset,
        });
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Registered>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// A plain TCP connection that sends registered bodies with `sendfile`.
pub struct Conn {
    stream: TcpStream,
    slot: Slot,
}

impl Conn {
    pub fn new(stream: TcpStream) -> (Conn, ZeroCopy) {
        let slot = Slot::default();
        let handle = ZeroCopy(slot.clone());
        (Conn { stream, slot }, handle)
    }

    /// The file range `buf` lies in, if it lies inside the registered body.
    fn file_range(&self, buf: &[u8]) -> Option<(Arc<File>, u64)> {
        let reg = lock(&self.slot);
        let r = reg.as_ref()?;
        let start = r.data.as_ptr() as usize;
        let at = buf.as_ptr() as usize;
        let inside = !buf.is_empty() && at >= start && at + buf.len() <= start + r.data.len();
        inside.then(|| (r.file.clone(), r.offset + (at - start) as u64))
    }

    /// Sends up to `len` bytes of `file` from `offset`; `WouldBlock` when the socket
    /// is full. The registration is dropped once its last byte is sent.
    fn try_sendfile(&self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut at = offset;
        let n = self.stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(&self.stream, file, Some(&mut at), len).map_err(io::Error::from)
        })?;
        if n == 0 {
            // The file is shorter than the body that was read from it.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob is shorter than the body read from it",
            ));
        }
        metrics::counter!(crate::stats::ZERO_COPY).increment(n as u64);
        let mut reg = lock(&self.slot);
        if let Some(r) = reg.as_ref()
            && offset + n as u64 == r.offset + r.data.len() as u64
        {
            *reg = None;
        }
        Ok(n)
    }

    /// Writes `bufs`, none of them registered, with `MSG_MORE`: a body follows.
    fn try_send_more(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        self.stream.try_io(Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::default();
            sendmsg(&self.stream, bufs, &mut control, SendFlags::MORE).map_err(io::Error::from)
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let found = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| self.file_range(b).map(|(f, off)| (i, f, off)));
        let Some((first, file, offset)) = found else {
            return Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        };
        let before: usize = bufs[..first].iter().map(|b| b.len()).sum();
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let sent = if first == 0 {
                self.try_sendfile(&file, offset, bufs[0].len())
            } else {
                // The head first; then as much of the body as the socket takes now.
                match self.try_send_more(&bufs[..first]) {
                    Ok(n) if n < before => Ok(n),
                    // (an error of the body repeats on the next call; report the head)
                    Ok(n) => Ok(n + self
                        .try_sendfile(&file, offset, bufs[first].len())
                        .unwrap_or(0)),
                    Err(e) => Err(e),
                }
            };
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
