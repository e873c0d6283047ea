//! Loads the key file straight into a [`KeyStore`]: the file is read in
//! blocks of half a megabyte and split as it comes (`split.rs`) into its
//! entries; each block's entries are parsed from the block (strings
//! borrowed) and checked into a `Part` by a pool of threads (up to
//! `MAX_WORKERS`, one per core), and the parts are merged in file order
//! (`build.rs`); the skeleton (the document with `keys` emptied) is parsed
//! last. So neither the file's bytes (168 MB for a million keys) nor a
//! `Vec<KeyEntry>` are ever held, only a few blocks in flight, and the
//! store's tables are sized from the file's length up front instead of
//! regrown: a large transient buffer's memory is not given back to the OS
//! at once by every allocator (mimalloc purges freed memory after a delay,
//! and only when it next runs). Same checks and the same first error as
//! [`super::KeyFile::read`] + [`KeyStore::from_file`].

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use super::build::Builder;
use super::entry::{add_entry, parse_skeleton};
use super::file::KeyFileError;
use super::part::Part;
use super::split::Splitter;
use super::store::{KeyStore, KeyStoreError};

/// Bytes read from the file at a time (the unit of work of a thread).
const BLOCK: usize = 512 * 1024;

/// Threads that parse blocks, at most (and at most one per core); a file of
/// one block is parsed by the calling thread alone.
const MAX_WORKERS: usize = 4;

/// A block of the file and where its entries lie in it.
struct Batch {
    buf: Vec<u8>,
    spans: Vec<Range<usize>>,
    /// File offset of `buf[0]`.
    base: u64,
    /// File index of the first span's entry.
    first: usize,
}

/// Parses and checks a block's entries (stops at the first refused).
fn parse_batch(path: &Path, b: &Batch) -> Part {
    let mut part = Part::default();
    part.slots.reserve_exact(b.spans.len());
    part.origin.reserve_exact(b.spans.len());
    part.ids.reserve_exact(b.spans.len());
    // The entries' UTF-8 is checked once for the block (fast for ASCII), so
    // serde_json reads each one as a `str` instead of checking every string
    // again; a block that is not UTF-8 is parsed as bytes (serde_json then
    // names the entry at fault).
    let lo = b.spans.first().map_or(0, |r| r.start);
    let hi = b.spans.last().map_or(0, |r| r.end);
    let text = b.buf.get(lo..hi).and_then(|t| std::str::from_utf8(t).ok());
    for (k, r) in b.spans.iter().enumerate() {
        let bytes = b.buf.get(r.clone()).unwrap_or_default();
        let text = text.and_then(|t| t.get(r.start - lo..r.end - lo));
        let at = b.base + r.start as u64;
        add_entry(&mut part, path, b.first + k, text.ok_or(bytes), at);
        if part.error.is_some() {
            break;
        }
    }
    part
}

type Done = (usize, Part, Batch);

/// A pool thread: parses batches until the queue closes (or, after a
/// refusal elsewhere, hands them back unparsed).
fn worker(
    path: &Path,
    jobs: &Mutex<mpsc::Receiver<(usize, Batch)>>,
    done: mpsc::Sender<Done>,
    stop: &AtomicBool,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, batch)) = job else { return };
        let part = if stop.load(Ordering::Relaxed) {
            Part::default()
        } else {
            parse_batch(path, &batch)
        };
        if done.send((seq, part, batch)).is_err() {
            return;
        }
    }
}

/// Merges parsed parts in file order, whatever order they come back in.
struct Merge<'b, 'p> {
    builder: &'b mut Builder<'p>,
    next: usize,
    pending: BTreeMap<usize, Part>,
    /// Buffers handed back, for the next blocks.
    free: Vec<(Vec<u8>, Vec<Range<usize>>)>,
    failed: Option<KeyStoreError>,
}

impl Merge<'_, '_> {
    fn take(&mut self, (seq, part, batch): Done) {
        self.free.push((batch.buf, batch.spans));
        self.pending.insert(seq, part);
        while let Some(part) = self.pending.remove(&self.next) {
            self.next += 1;
            if self.failed.is_none()
                && let Err(e) = self.builder.merge(part)
            {
                self.failed = Some(e);
            }
        }
    }
}

/// Why reading stopped before the end of the file.
enum Stop {
    Io(std::io::Error),
    Syntax(String),
}

/// Reads up to `BLOCK` more bytes onto `buf`; 0 at the end of the file.
fn read_block(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(BLOCK);
    file.take(BLOCK as u64).read_to_end(buf)
}

/// The calling thread's side: reads and splits the file, hands the blocks
/// to the pool (or parses them itself without one) and merges what comes
/// back.
struct Reader<'a, 'b, 'p> {
    path: &'p Path,
    merge: Merge<'b, 'p>,
    /// `None`: no pool, blocks are parsed here.
    jobs: Option<mpsc::SyncSender<(usize, Batch)>>,
    done: &'a mpsc::Receiver<Done>,
    stop: &'a AtomicBool,
    /// Blocks handed out.
    seq: usize,
}

impl<'b, 'p> Reader<'_, 'b, 'p> {
    fn dispatch(&mut self, batch: Batch) {
        let seq = self.seq;
        self.seq += 1;
        let batch = match &self.jobs {
            Some(jobs) => match jobs.send((seq, batch)) {
                Ok(()) => {
                    while let Ok(d) = self.done.try_recv() {
                        self.merge.take(d);
                    }
                    self.note_refusal();
                    return;
                }
                // The pool is gone: parse it here.
                Err(mpsc::SendError((_, b))) => b,
            },
            None => batch,
        };
        let part = parse_batch(self.path, &batch);
        self.merge.take((seq, part, batch));
        self.note_refusal();
    }

    fn note_refusal(&self) {
        if self.merge.failed.is_some() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Reads the file to its end: the skeleton, or `None` if an entry was
    /// refused (the merge holds why).
    fn read(&mut self, file: &mut std::fs::File) -> Result<Option<Vec<u8>>, Stop> {
        let mut splitter = Splitter::new();
        let mut buf = Vec::new();
        let mut base = 0u64;
        while self.merge.failed.is_none() {
            let from = buf.len();
            let n = read_block(file, &mut buf).map_err(Stop::Io)?;
            let (mut next, mut spans) = self.merge.free.pop().unwrap_or_default();
            spans.clear();
            let first = splitter.entries();
            if n == 0 {
                let r = splitter.finish(&buf, &mut spans);
                if !spans.is_empty() {
                    self.dispatch(Batch {
                        buf,
                        spans,
                        base,
                        first,
                    });
                }
                return r.map(Some).map_err(Stop::Syntax);
            }
            let carry = match splitter.scan(&buf, from, base, &mut spans) {
                Ok(carry) => carry,
                Err(e) => {
                    if !spans.is_empty() {
                        self.dispatch(Batch {
                            buf,
                            spans,
                            base,
                            first,
                        });
                    }
                    return Err(Stop::Syntax(e));
                }
            };
            if spans.is_empty() {
                buf.drain(..carry);
                self.merge.free.push((next, spans));
            } else {
                // The unfinished entry moves to the front of the next block.
                next.clear();
                next.extend_from_slice(buf.get(carry..).unwrap_or_default());
                let full = std::mem::replace(&mut buf, next);
                self.dispatch(Batch {
                    buf: full,
                    spans,
                    base,
                    first,
                });
            }
            base += carry as u64;
        }
        Ok(None)
    }

    /// Closes the queue and merges the parts still out. `false` if some
    /// never came back (a pool thread stopped).
    fn finish(mut self) -> (Merge<'b, 'p>, bool) {
        drop(self.jobs.take());
        while self.merge.next < self.seq {
            match self.done.recv() {
                Ok(d) => self.merge.take(d),
                Err(_) => break,
            }
        }
        let whole = self.merge.next == self.seq;
        (self.merge, whole)
    }
}

/// Threads to parse with for a file of `len` bytes (0: the caller alone).
fn workers(len: u64) -> usize {
    if len <= BLOCK as u64 {
        return 0;
    }
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_WORKERS)
}

pub(super) fn load(path: &Path) -> Result<KeyStore, KeyStoreError> {
    let read_error = |source| KeyFileError::Read {
        path: path.into(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyStore::empty()),
        Err(source) => return Err(read_error(source).into()),
    };
    let len = file.metadata().map_err(read_error)?.len();
    let corrupt = |message: String| -> KeyStoreError {
        KeyFileError::Corrupt {
            path: path.into(),
            message,
        }
        .into()
    };
    let mut builder = Builder::new(path);
    builder.reserve_for_file(len);
    let (job_tx, job_rx) = mpsc::sync_channel(2 * MAX_WORKERS);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel();
    let stop = AtomicBool::new(false);
    let (read, failed, whole) = std::thread::scope(|s| {
        let mut pool = 0;
        for _ in 0..workers(len) {
            let (jobs, done, stop) = (&job_rx, done_tx.clone(), &stop);
            let spawned = std::thread::Builder::new()
                .name("modelgate-keyload".into())
                .spawn_scoped(s, move || worker(path, jobs, done, stop));
            if spawned.is_err() {
                break; // fewer threads (or none) still load the file
            }
            pool += 1;
        }
        drop(done_tx);
        let mut reader = Reader {
            path,
            merge: Merge {
                builder: &mut builder,
                next: 0,
                pending: BTreeMap::new(),
                free: Vec::new(),
                failed: None,
            },
            jobs: (pool > 0).then_some(job_tx),
            done: &done_rx,
            stop: &stop,
            seq: 0,
        };
        let read = reader.read(&mut file);
        let (merge, whole) = reader.finish();
        (read, merge.failed, whole)
    });
    if let Some(err) = failed {
        return Err(err);
    }
    let skeleton = match read {
        Ok(Some(s)) if whole => s,
        Ok(_) => {
            let m = "a loading thread stopped before the file was read whole; reload to try again";
            return Err(builder.fail(corrupt(m.into())));
        }
        Err(Stop::Io(e)) => return Err(builder.fail(read_error(e).into())),
        Err(Stop::Syntax(m)) => return Err(builder.fail(corrupt(m))),
    };
    // The rest of the document: `keys` is empty here (unless it was spelled
    // with escapes, then its entries are parsed and added from here).
    let mut part = Part::default();
    let parsed = parse_skeleton(&skeleton, path, &mut part);
    builder.merge(part)?;
    match parsed.map_err(|e| builder.fail(corrupt(e.to_string())))? {
        Some(1) => builder.finish(),
        Some(v) => Err(builder.fail(corrupt(format!(
            "unsupported version {v}; this modelgate reads version 1"
        )))),
        None => Err(builder.fail(corrupt("missing field `version`".into()))),
    }
}

#[cfg(test)]
mod tests;
