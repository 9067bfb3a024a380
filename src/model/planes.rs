//! The embedded models' float tensors stored byte plane by byte plane: the
//! first bytes of every float, then the second bytes, and so on. A weight's
//! sign-and-exponent byte takes few values while its mantissa bytes look
//! random; apart, deflate packs the fp32 model 0.21 MB smaller (BENCHMARKS.md,
//! "How big is the binary?"). build.rs splits the planes before deflating
//! (it includes this file), and the registry joins them after inflating.
//! The protobuf framing around the tensors is untouched, so both sides find
//! the same tensors by walking it; a file it cannot walk is left as it is.

use std::ops::Range;

/// `raw_data` of every FLOAT initializer (ModelProto.graph = 7,
/// GraphProto.initializer = 5, TensorProto.data_type = 2 with FLOAT = 1,
/// TensorProto.raw_data = 9), whole floats only.
pub fn float_tensors(onnx: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let Some(model) = fields(onnx, 0..onnx.len()) else { return spans };
    for (number, graph) in model {
        let (7, Wire::Bytes(graph)) = (number, graph) else { continue };
        let Some(graph) = fields(onnx, graph) else { return Vec::new() };
        for (number, tensor) in graph {
            let (5, Wire::Bytes(tensor)) = (number, tensor) else { continue };
            let Some(tensor) = fields(onnx, tensor) else { return Vec::new() };
            let float = tensor.iter().any(|(n, w)| *n == 2 && matches!(w, Wire::Varint(1)));
            let raw = tensor.into_iter().find_map(|(n, w)| match (n, w) {
                (9, Wire::Bytes(r)) => Some(r),
                _ => None,
            });
            if let (true, Some(raw)) = (float, raw) {
                let whole = raw.start..raw.start + raw.len() / 4 * 4;
                if !whole.is_empty() {
                    spans.push(whole);
                }
            }
        }
    }
    spans
}

/// Each span's floats as four planes of bytes.
pub fn split(data: &mut [u8], spans: &[Range<usize>]) {
    for span in spans {
        let floats = data[span.clone()].to_vec();
        let n = floats.len() / 4;
        for (i, float) in floats.chunks_exact(4).enumerate() {
            for (plane, &byte) in float.iter().enumerate() {
                data[span.start + plane * n + i] = byte;
            }
        }
    }
}

/// The inverse of [`split`].
pub fn join(data: &mut [u8], spans: &[Range<usize>]) {
    for span in spans {
        let planes = data[span.clone()].to_vec();
        let n = planes.len() / 4;
        for i in 0..n {
            for plane in 0..4 {
                data[span.start + i * 4 + plane] = planes[plane * n + i];
            }
        }
    }
}

enum Wire {
    Varint(u64),
    Bytes(Range<usize>),
    Fixed,
}

/// The fields of the protobuf message in `buf[range]`, or None if it is
/// not one.
fn fields(buf: &[u8], range: Range<usize>) -> Option<Vec<(u64, Wire)>> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let key = varint(buf, &mut at, range.end)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut at, range.end)?),
            1 | 5 => {
                at += if key & 7 == 1 { 8 } else { 4 };
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at, range.end)?).ok()?;
                let end = at.checked_add(len).filter(|e| *e <= range.end)?;
                let bytes = at..end;
                at = end;
                Wire::Bytes(bytes)
            }
            _ => return None,
        };
        out.push((key >> 3, wire));
    }
    (at == range.end).then_some(out)
}

fn varint(buf: &[u8], at: &mut usize, end: usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).filter(|_| *at < end)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_round_trip_and_leave_the_framing_alone() {
        let onnx = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/yolov8n.onnx")).unwrap();
        let spans = float_tensors(&onnx);
        // YOLOv8n's 127 float initializers: nearly all of the file.
        assert_eq!(spans.len(), 127);
        let bytes: usize = spans.iter().map(|s| s.len()).sum();
        assert!(bytes > onnx.len() * 9 / 10, "{bytes} of {}", onnx.len());
        let mut shuffled = onnx.clone();
        split(&mut shuffled, &spans);
        assert_ne!(shuffled, onnx);
        assert_eq!(float_tensors(&shuffled), spans, "the framing is found again in the split file");
        join(&mut shuffled, &spans);
        assert_eq!(shuffled, onnx);
    }

    #[test]
    fn what_is_not_protobuf_has_no_tensors() {
        assert!(float_tensors(b"").is_empty());
        assert!(float_tensors(&[0xff; 16]).is_empty());
        assert!(float_tensors(&[0x3a, 0x05, 0x2a, 0x09]).is_empty(), "a length past the end");
    }
}
