//! JSON lines on standard output (or any writer).

use std::io::{self, BufWriter, Write};

use super::{Sink, SinkError};

/// One record per line. Keys are not written (the symbol is in the record).
pub struct StdoutSink {
    out: BufWriter<Box<dyn Write + Send>>,
    flush_each: bool,
    name: &'static str,
}

impl StdoutSink {
    /// Standard output; `flush_each` writes every record through at once.
    pub fn stdout(flush_each: bool) -> Self {
        Self::new(Box::new(io::stdout()), flush_each, "stdout")
    }

    pub fn new(out: Box<dyn Write + Send>, flush_each: bool, name: &'static str) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
            flush_each,
            name,
        }
    }

    fn error(&self, source: io::Error) -> SinkError {
        if source.kind() == io::ErrorKind::BrokenPipe {
            SinkError::Closed { sink: self.name }
        } else {
            SinkError::Io {
                sink: self.name,
                source,
            }
        }
    }
}

impl Sink for StdoutSink {
    fn describe(&self) -> String {
        self.name.to_owned()
    }

    fn send(&mut self, _key: &[u8], record: &[u8]) -> Result<(), SinkError> {
        let written = self
            .out
            .write_all(record)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| {
                if self.flush_each {
                    self.out.flush()
                } else {
                    Ok(())
                }
            });
        written.map_err(|e| self.error(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_lines_and_flushes_when_asked() {
        let shared = Shared::default();
        let mut sink = StdoutSink::new(Box::new(shared.clone()), true, "test");
        sink.send(b"A", br#"{"symbol":"A"}"#).unwrap();
        assert_eq!(&shared.0.lock().unwrap()[..], b"{\"symbol\":\"A\"}\n");
        let mut buffered = StdoutSink::new(Box::new(shared.clone()), false, "test");
        buffered.send(b"B", b"{}").unwrap();
        assert_eq!(shared.0.lock().unwrap().len(), 15);
        buffered.close().unwrap();
        assert_eq!(shared.0.lock().unwrap().len(), 18);
    }

    #[test]
    fn a_closed_pipe_is_not_an_io_failure() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
        }
        let mut sink = StdoutSink::new(Box::new(Broken), true, "test");
        let err = sink.send(b"A", b"{}").unwrap_err();
        assert!(matches!(err, SinkError::Closed { .. }), "{err:?}");
        assert!(!err.retryable());
    }
}
