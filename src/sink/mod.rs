//! The local log stream: one JSON object per processed frame, one line each,
//! to stdout (journald under systemd) or appended to a file with size-based
//! rotation. Each line is a single `write`, so readers never see half a line.

pub mod time;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Which frames are written (`--emit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Emit {
    /// Every processed frame.
    #[default]
    All,
    /// Frames with at least one object.
    Detections,
    /// Frames whose set of classes differs from the previous frame's.
    Changes,
}

/// Decides per frame whether to write, remembering the last class set.
#[derive(Debug)]
pub struct Filter {
    emit: Emit,
    last: Option<Vec<usize>>,
}

impl Filter {
    pub fn new(emit: Emit) -> Filter {
        Filter { emit, last: None }
    }

    /// Whether a frame with these classes is written.
    pub fn pass(&mut self, classes: impl IntoIterator<Item = usize>) -> bool {
        let mut set: Vec<usize> = classes.into_iter().collect();
        set.sort_unstable();
        set.dedup();
        match self.emit {
            Emit::All => true,
            Emit::Detections => !set.is_empty(),
            Emit::Changes => {
                let changed = self.last.as_ref() != Some(&set);
                self.last = Some(set);
                changed
            }
        }
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File { path: PathBuf, max_bytes: u64, keep: usize },
}

/// A line writer.
pub struct Sink {
    target: Target,
    file: Option<File>,
    size: u64,
    /// Lines that could not be written (disk full, ...), counted not fatal.
    pub failed: u64,
}

impl Sink {
    pub fn open(target: Target) -> io::Result<Sink> {
        let mut sink = Sink { target, file: None, size: 0, failed: 0 };
        if let Target::File { path, .. } = &sink.target {
            let file = open_append(path)?;
            sink.size = file.metadata()?.len();
            sink.file = Some(file);
        }
        Ok(sink)
    }

    /// Opens the file again by its path (SIGHUP): after logrotate or anyone
    /// moved it away, lines go to a new file at the configured path. On
    /// error the old file is kept.
    pub fn reopen(&mut self) -> io::Result<()> {
        if let Target::File { path, .. } = &self.target {
            let file = open_append(path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(())
    }

    /// Writes `line` plus a newline with one `write` call, rotating first when
    /// the file would pass its size limit. Errors are counted and returned.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 2);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let result = self.write_buf(&buf);
        if result.is_err() {
            self.failed += 1;
        }
        result
    }

    fn write_buf(&mut self, buf: &[u8]) -> io::Result<()> {
        match &self.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Target::File { path, max_bytes, keep } => {
                if self.size > 0 && self.size + buf.len() as u64 > *max_bytes {
                    rotate(path, *keep)?;
                    self.file = Some(open_append(path)?);
                    self.size = 0;
                }
                let file = self.file.as_mut().expect("file target has a file");
                let n = file.write(buf)?;
                self.size += n as u64;
                if n < buf.len() {
                    // A short write (disk full): finish the line so the next starts clean.
                    file.write_all(&buf[n..])?;
                    self.size += (buf.len() - n) as u64;
                }
                Ok(())
            }
        }
    }
}

/// Opens for append; if the file does not end with a newline (a crash cut
/// the last line), starts on a fresh line so the next line parses.
fn open_append(path: &PathBuf) -> io::Result<File> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        let mut reader = File::open(path)?;
        reader.seek(SeekFrom::Start(len - 1))?;
        reader.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// `log` -> `log.1` -> ... -> `log.<keep>` (the oldest is dropped).
fn rotate(path: &PathBuf, keep: usize) -> io::Result<()> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("yolod-sink-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("frames.jsonl")
    }

    #[test]
    fn filters_pass_all_detections_or_changes() {
        let mut all = Filter::new(Emit::All);
        assert!(all.pass([]) && all.pass([1]));
        let mut det = Filter::new(Emit::Detections);
        assert!(!det.pass([]) && det.pass([0, 0]));
        let mut ch = Filter::new(Emit::Changes);
        let seq = [vec![], vec![], vec![0], vec![0, 0], vec![0, 2], vec![2, 0], vec![]];
        let passed: Vec<bool> = seq.into_iter().map(|s| ch.pass(s)).collect();
        assert_eq!(passed, vec![true, false, true, false, true, false, true]);
    }

    #[test]
    fn lines_rotate_by_size_and_keep_n_files() {
        let path = temp("rotate");
        let mut sink = Sink::open(Target::File { path: path.clone(), max_bytes: 25, keep: 2 }).unwrap();
        for i in 0..10 {
            sink.write_line(format!("{{\"frame\":{i}}}").as_bytes()).unwrap();
        }
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "{\"frame\":8}\n{\"frame\":9}\n");
        assert_eq!(read(&PathBuf::from(format!("{}.1", path.display()))), "{\"frame\":6}\n{\"frame\":7}\n");
        assert!(PathBuf::from(format!("{}.2", path.display())).exists());
        assert!(!PathBuf::from(format!("{}.3", path.display())).exists());
    }

    #[test]
    fn reopening_after_the_file_was_moved_writes_to_a_new_file_at_the_path() {
        let path = temp("reopen");
        let moved = path.with_extension("jsonl.old");
        let mut sink = Sink::open(Target::File { path: path.clone(), max_bytes: 1 << 20, keep: 1 }).unwrap();
        sink.write_line(b"{\"frame\":1}").unwrap();
        std::fs::rename(&path, &moved).unwrap();
        sink.write_line(b"{\"frame\":2}").unwrap();
        sink.reopen().unwrap();
        sink.write_line(b"{\"frame\":3}").unwrap();
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "{\"frame\":1}\n{\"frame\":2}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"frame\":3}\n");
    }

    #[test]
    fn a_torn_last_line_is_closed_before_appending() {
        let path = temp("torn");
        std::fs::write(&path, "{\"frame\":1}\n{\"fra").unwrap();
        let mut sink = Sink::open(Target::File { path: path.clone(), max_bytes: 1 << 20, keep: 1 }).unwrap();
        sink.write_line(b"{\"frame\":2}").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"frame\":1}\n{\"fra\n{\"frame\":2}\n");
        assert!(serde_json::from_str::<serde_json::Value>(text.lines().last().unwrap()).is_ok());
    }
}
