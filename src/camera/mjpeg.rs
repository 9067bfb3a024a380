//! Whole JPEG pictures out of a byte stream: concatenated JPEGs (what
//! `ffmpeg -f mjpeg -` and `rpicam-vid --codec mjpeg -o -` write), or the
//! parts of a `multipart/x-mixed-replace` body, whose headers and
//! boundaries are simply the bytes between pictures.
//!
//! A picture is found by its structure, not by searching for the end
//! marker: marker segments are skipped by their lengths (so an EXIF
//! thumbnail inside APP1 does not end the picture early), and entropy-coded
//! data ends at the first marker that is not byte stuffing or a restart
//! marker. A picture cut short (a new SOI before the end, a byte that
//! cannot start a marker, a picture over the size cap) is reported as
//! corrupt, and the scan resumes at the next SOI.

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// One whole picture, SOI to EOI.
    Picture(Vec<u8>),
    /// A picture that was cut short or malformed, and why; it is dropped.
    Corrupt(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for FF D8 at `pos`.
    Seeking,
    /// At a marker (FF xx) at `pos`, inside a picture starting at 0.
    Marker,
    /// In entropy-coded data at `pos`.
    Entropy,
}

/// The incremental splitter: feed it bytes, take pictures out.
pub struct Splitter {
    buf: Vec<u8>,
    /// Where the scan stands in `buf`; a picture in progress starts at 0.
    pos: usize,
    state: State,
    max_picture: usize,
}

impl Splitter {
    /// A splitter that refuses pictures over `max_picture` bytes.
    pub fn new(max_picture: usize) -> Splitter {
        Splitter { buf: Vec::new(), pos: 0, state: State::Seeking, max_picture }
    }

    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held, for bounding what a caller buffers.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The stream ended: a picture in progress is corrupt.
    pub fn finish(&mut self) -> Option<Item> {
        let partial = self.state != State::Seeking;
        self.buf.clear();
        self.pos = 0;
        self.state = State::Seeking;
        partial.then_some(Item::Corrupt("the stream ended inside a picture"))
    }

    /// The next picture (or corrupt one) that the bytes so far complete.
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            match self.state {
                State::Seeking => {
                    let found = self.buf.windows(2).position(|w| w == [0xFF, 0xD8]);
                    match found {
                        Some(i) => {
                            self.buf.drain(..i);
                            self.pos = 2;
                            self.state = State::Marker;
                        }
                        None => {
                            // Keep a trailing FF: it may be the first half of an SOI.
                            let keep = usize::from(self.buf.last() == Some(&0xFF));
                            self.buf.drain(..self.buf.len() - keep);
                            return None;
                        }
                    }
                }
                State::Marker => {
                    let (Some(&first), Some(&code)) = (self.buf.get(self.pos), self.buf.get(self.pos + 1)) else {
                        return self.need_more();
                    };
                    if first != 0xFF {
                        return Some(self.corrupt("a marker was expected"));
                    }
                    match code {
                        // A fill byte: any number of FF may come before the code.
                        0xFF => self.pos += 1,
                        0xD9 => return Some(self.take_picture(self.pos + 2)),
                        0xD8 => return Some(self.restart_here("a new picture began before the end of the last")),
                        0xD0..=0xD7 | 0x01 => self.pos += 2,
                        0x00 => return Some(self.corrupt("a marker was expected")),
                        _ => {
                            let Some(len) = self.buf.get(self.pos + 2..self.pos + 4) else { return self.need_more() };
                            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                            if len < 2 {
                                return Some(self.corrupt("a marker segment shorter than its length field"));
                            }
                            self.pos += 2 + len;
                            if code == 0xDA {
                                self.state = State::Entropy;
                            }
                        }
                    }
                }
                State::Entropy => {
                    let rest = &self.buf[self.pos.min(self.buf.len())..];
                    let mut i = 0;
                    let mut marker = None;
                    while let Some(off) = rest[i..].iter().position(|&b| b == 0xFF) {
                        let at = i + off;
                        match rest.get(at + 1) {
                            // A trailing FF: wait for the byte after it.
                            None => break,
                            Some(0x00 | 0xD0..=0xD7) => i = at + 2,
                            // An FF before FF is a fill byte; the marker follows.
                            Some(0xFF) => i = at + 1,
                            Some(_) => {
                                marker = Some(at);
                                break;
                            }
                        }
                        if i >= rest.len() {
                            break;
                        }
                    }
                    match marker {
                        Some(at) => {
                            self.pos += at;
                            self.state = State::Marker;
                        }
                        None => {
                            if rest.last() != Some(&0xFF) {
                                self.pos += rest.len();
                            } else {
                                self.pos += rest.len() - 1;
                            }
                            return self.need_more();
                        }
                    }
                }
            }
        }
    }

    /// Nothing whole yet; a picture in progress that outgrew the cap is corrupt.
    fn need_more(&mut self) -> Option<Item> {
        if self.state != State::Seeking && self.buf.len().max(self.pos) > self.max_picture {
            return Some(self.corrupt("a picture larger than the size limit"));
        }
        None
    }

    fn take_picture(&mut self, end: usize) -> Item {
        let rest = self.buf.split_off(end);
        let picture = std::mem::replace(&mut self.buf, rest);
        self.pos = 0;
        self.state = State::Seeking;
        if picture.len() > self.max_picture {
            return Item::Corrupt("a picture larger than the size limit");
        }
        Item::Picture(picture)
    }

    /// Drops the picture in progress and resumes at the next SOI after its start.
    fn corrupt(&mut self, why: &'static str) -> Item {
        self.buf.drain(..2.min(self.buf.len()));
        self.pos = 0;
        self.state = State::Seeking;
        Item::Corrupt(why)
    }

    /// Drops the picture in progress; a new one starts at `pos`.
    fn restart_here(&mut self, why: &'static str) -> Item {
        self.buf.drain(..self.pos);
        self.pos = 2;
        self.state = State::Marker;
        Item::Corrupt(why)
    }
}

/// The error of a stream that sends bytes but no whole picture (H.264,
/// raw video, an HTML page): it is not MJPEG.
pub fn no_pictures(bytes: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "no whole JPEG picture in {} MB: not an MJPEG stream (for raw or H.264 video, have ffmpeg convert it: -f mjpeg)",
            bytes >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/images/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Feeds `data` in pieces of `step` bytes and collects everything.
    fn split(data: &[u8], step: usize, max: usize) -> Vec<Item> {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            s.feed(piece);
            while let Some(item) = s.next_item() {
                out.push(item);
            }
        }
        out.extend(s.finish());
        out
    }

    fn pictures(items: &[Item]) -> Vec<&[u8]> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Picture(p) => Some(p.as_slice()),
                Item::Corrupt(_) => None,
            })
            .collect()
    }

    #[test]
    fn concatenated_pictures_come_out_whole_however_the_bytes_arrive() {
        let (bus, zidane) = (jpeg("bus.jpg"), jpeg("zidane.jpg"));
        let stream = [bus.clone(), zidane.clone(), bus.clone()].concat();
        for step in [1, 7, 4096, stream.len()] {
            let items = split(&stream, step, 1 << 24);
            assert_eq!(items.len(), 3, "step {step}");
            assert_eq!(pictures(&items), [&bus[..], &zidane[..], &bus[..]], "step {step}");
        }
    }

    #[test]
    fn multipart_headers_and_boundaries_between_pictures_are_skipped() {
        let bus = jpeg("bus.jpg");
        let part = |p: &[u8]| {
            [
                format!("--ffmpeg\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", p.len()).as_bytes(),
                p,
                b"\r\n",
            ]
            .concat()
        };
        let stream = [part(&bus), part(&bus)].concat();
        let items = split(&stream, 1000, 1 << 24);
        assert_eq!(pictures(&items), [&bus[..], &bus[..]]);
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn an_exif_thumbnail_does_not_end_the_picture() {
        let bus = jpeg("bus.jpg");
        // APP1 holding a whole small JPEG (FF D8 ... FF D9), put after SOI.
        let thumb = [&[0xFF, 0xD8, 0xFF, 0xD9][..], b"Exif-ish"].concat();
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        app1.extend_from_slice(&thumb);
        let with_thumb = [&bus[..2], &app1, &bus[2..]].concat();
        let items = split(&with_thumb, 333, 1 << 24);
        assert_eq!(pictures(&items), [&with_thumb[..]]);
    }

    #[test]
    fn a_cut_picture_is_corrupt_and_the_next_one_survives() {
        let bus = jpeg("bus.jpg");
        let stream = [&bus[..bus.len() / 2], &bus[..]].concat();
        let items = split(&stream, 512, 1 << 24);
        assert!(matches!(items[0], Item::Corrupt(_)), "{:?}", items[0]);
        assert_eq!(pictures(&items), [&bus[..]]);
        // Cut at the end of the stream: corrupt on finish.
        let items = split(&bus[..bus.len() - 10], 512, 1 << 24);
        assert_eq!(items, [Item::Corrupt("the stream ended inside a picture")]);
    }

    #[test]
    fn pictures_over_the_cap_are_refused_without_holding_them() {
        let bus = jpeg("bus.jpg");
        let mut s = Splitter::new(10_000);
        let mut corrupt = 0;
        for piece in [bus.clone(), bus.clone()].concat().chunks(1000) {
            s.feed(piece);
            while let Some(item) = s.next_item() {
                assert!(matches!(item, Item::Corrupt(_)));
                corrupt += 1;
            }
            assert!(s.buffered() <= 12_000, "{}", s.buffered());
        }
        assert!(corrupt >= 2);
    }

    #[test]
    fn garbage_without_pictures_is_not_kept() {
        let mut s = Splitter::new(1 << 20);
        s.feed(&vec![b'x'; 100_000]);
        assert_eq!(s.next_item(), None);
        assert!(s.buffered() <= 1);
        assert_eq!(s.finish(), None);
    }
}
