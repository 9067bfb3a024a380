//! The panel layouts tract's int8 matmul reads, and [`Layout::lay`],
//! which writes a k x n matrix into them row by row, split by runs of
//! whole panels among tract's pool. [`super::Patches`] and
//! [`super::super::pack`] lay their matrices through it.

use std::ops::Range;

use tract_linalg::mmm::MMMInputFormat;
use tract_linalg::multithread::par_chunks_mut;
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::prelude::*;

/// How the patch matrix is laid out for the matmul kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// `PackedFormat`: panels of `r` columns, k-major inside a panel:
    /// element (k, m) at `k * r + m`.
    KMajor { r: usize, panel_len: usize, align: usize },
    /// `PackedI8K4`: panels of `r` columns, k in groups of 4 innermost:
    /// element (k, m) at `(k / 4) * 4r + 4m + k % 4`.
    K4 { r: usize, panel_len: usize, align: usize },
}

/// The fewest columns (output positions) a matrix must have for
/// [`Layout::lay`] to split it among threads: tract's pool makes 4 runs per
/// thread, so 4 threads get runs of 64 columns or more.
pub(super) const MIN_SPLIT_COLUMNS: usize = 1024;

impl Layout {
    /// The layout of `format` for a k-deep matrix, if it is one we lay.
    pub(crate) fn of(format: &dyn MMMInputFormat, k: usize) -> Option<Layout> {
        if let Some(f) = format.downcast_ref::<PackedFormat>() {
            (f.dt.unquantized() == i8::datum_type()).then(|| Layout::KMajor {
                r: f.r,
                panel_len: f.single_panel_len(k),
                align: f.alignment(),
            })
        } else {
            format.downcast_ref::<PackedI8K4>().map(|f| Layout::K4 {
                r: f.r,
                panel_len: f.single_panel_len(k),
                align: f.alignment(),
            })
        }
    }

    /// (r, panel length, alignment).
    pub(crate) fn panels(self) -> (usize, usize, usize) {
        match self {
            Layout::KMajor { r, panel_len, align } | Layout::K4 { r, panel_len, align } => (r, panel_len, align),
        }
    }

    /// Lays a k x n matrix into `packed` (`n.div_ceil(r)` panels, any
    /// content), in runs of whole panels, which tract's pool shares among
    /// its threads with --matmul-threads > 1. For each run `rows(columns)`
    /// gives the writer of its rows: `row(k, out)` writes the run's columns
    /// of row k into `out`. The bytes no row reaches (the columns past n,
    /// a k-major panel's tail) are zeroed.
    pub(crate) fn lay<F: FnMut(usize, &mut [i8])>(
        self,
        k: usize,
        n: usize,
        packed: &mut [i8],
        rows: impl Fn(Range<usize>) -> F + Sync,
    ) -> TractResult<()> {
        let (r, panel_len, _) = self.panels();
        if n == 0 || packed.is_empty() {
            return Ok(());
        }
        // A run of a few columns costs more in per-row set-up than its
        // thread saves (at 320, packing cost 3-4x on 4 threads with the
        // 20x20 maps split): narrow matrices stay on one thread.
        let work = if n >= MIN_SPLIT_COLUMNS { k * n } else { 0 };
        par_chunks_mut(packed, panel_len, work, |first, panels| {
            let columns = first * r..((first + panels.len() / panel_len) * r).min(n);
            self.lay_columns(k, columns.len(), panels, rows(columns));
            Ok(())
        })
    }

    /// [`Layout::lay`] on one thread, the k x n matrix's panels in `packed`.
    fn lay_columns(self, k: usize, n: usize, packed: &mut [i8], mut row: impl FnMut(usize, &mut [i8])) {
        let (r, panel_len, _) = self.panels();
        let written = match self {
            Layout::KMajor { .. } => k * r,
            Layout::K4 { .. } => k.div_ceil(4) * 4 * r,
        };
        for (p, panel) in packed.chunks_mut(panel_len).enumerate() {
            if (p + 1) * r > n {
                panel.fill(0);
            } else {
                panel[written..].fill(0);
            }
        }
        match self {
            Layout::KMajor { r, panel_len, .. } => {
                let mut line = vec![0i8; n];
                for k in 0..k {
                    row(k, &mut line);
                    match r {
                        4 => scatter::<4>(&line, packed, k, panel_len),
                        8 => scatter::<8>(&line, packed, k, panel_len),
                        16 => scatter::<16>(&line, packed, k, panel_len),
                        _ => {
                            for (chunk, panel) in line.chunks(r).zip(packed.chunks_mut(panel_len)) {
                                panel[k * r..][..chunk.len()].copy_from_slice(chunk);
                            }
                        }
                    }
                }
            }
            Layout::K4 { r, panel_len, .. } => {
                let mut rows = vec![0i8; 4 * n];
                let mut quads = vec![0i8; 4 * n];
                for quad in 0..k.div_ceil(4) {
                    let group = quad * 4..(quad * 4 + 4).min(k);
                    // Rows past k must be zero: the kernel accumulates them.
                    rows[group.len() * n..].fill(0);
                    for (line, k) in rows.chunks_exact_mut(n).zip(group) {
                        row(k, line);
                    }
                    let (a, rest) = rows.split_at(n);
                    let (b, rest) = rest.split_at(n);
                    let (c, d) = rest.split_at(n);
                    // Whole panels straight from the rows where NEON can,
                    // the rest as all columns at once, then 4r-byte runs.
                    let done = interleave_into_panels([a, b, c, d], packed, quad, r, panel_len);
                    let packed = &mut packed[done / r * panel_len..];
                    let quads = &mut quads[..4 * (n - done)];
                    interleave4([&a[done..], &b[done..], &c[done..], &d[done..]], quads);
                    match r {
                        4 => scatter::<16>(quads, packed, quad, panel_len),
                        8 => scatter::<32>(quads, packed, quad, panel_len),
                        16 => scatter::<64>(quads, packed, quad, panel_len),
                        _ => {
                            for (chunk, panel) in quads.chunks(4 * r).zip(packed.chunks_mut(panel_len)) {
                                panel[quad * 4 * r..][..chunk.len()].copy_from_slice(chunk);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Lays row `k` of the patch matrix into k-major panels of `R` columns
/// (or, for K4, the interleaved quad `k` in runs of `R` = 4r bytes).
fn scatter<const R: usize>(row: &[i8], packed: &mut [i8], k: usize, panel_len: usize) {
    let mut panels = packed.chunks_mut(panel_len);
    let chunks = row.chunks_exact(R);
    let tail = chunks.remainder();
    for (chunk, panel) in chunks.zip(&mut panels) {
        let chunk: &[i8; R] = chunk.try_into().expect("R bytes");
        let at: &mut [i8; R] = (&mut panel[k * R..k * R + R]).try_into().expect("R bytes");
        *at = *chunk;
    }
    if let Some(panel) = panels.next().filter(|_| !tail.is_empty()) {
        panel[k * R..][..tail.len()].copy_from_slice(tail);
    }
}

/// `out[4m + i] = rows[i][m]`: four rows into the K4 column layout.
fn interleave4(rows: [&[i8]; 4], out: &mut [i8]) {
    let n = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == n) && out.len() >= 4 * n, "four rows of {n} into {} bytes", out.len());
    let done = interleave4_neon(rows, out);
    let [a, b, c, d] = rows.map(|r| &r[done..]);
    let columns = a.iter().zip(b).zip(c).zip(d);
    for (q, (((&a, &b), &c), &d)) in out[4 * done..].chunks_exact_mut(4).zip(columns) {
        let word = u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]);
        q.copy_from_slice(&word.to_le_bytes().map(|x| x as i8));
    }
}

/// The columns of `interleave4` in multiples of 16, by NEON's interleaving
/// store (`st4`: 64 bytes per instruction); returns how many it did.
#[cfg(target_arch = "aarch64")]
fn interleave4_neon(rows: [&[i8]; 4], out: &mut [i8]) -> usize {
    use std::arch::aarch64::{int8x16x4_t, vld1q_s8, vst4q_s8};
    let done = rows[0].len() / 16 * 16;
    for m in (0..done).step_by(16) {
        // SAFETY: m + 16 <= the length of every row and 4 (m + 16) <=
        // out.len() (checked by the caller); NEON is part of aarch64.
        unsafe {
            let v = int8x16x4_t(
                vld1q_s8(rows[0].as_ptr().add(m)),
                vld1q_s8(rows[1].as_ptr().add(m)),
                vld1q_s8(rows[2].as_ptr().add(m)),
                vld1q_s8(rows[3].as_ptr().add(m)),
            );
            vst4q_s8(out.as_mut_ptr().add(4 * m), v);
        }
    }
    done
}

/// For 8-column K4 panels (tract's SDOT kernels), quad `quad` of every
/// whole panel straight from the four rows: 8 columns of each, one `st4`
/// of 32 bytes into the panel. Returns how many columns it did (0 where
/// NEON or the layout is not there).
#[cfg(target_arch = "aarch64")]
fn interleave_into_panels(rows: [&[i8]; 4], packed: &mut [i8], quad: usize, r: usize, panel_len: usize) -> usize {
    use std::arch::aarch64::{int8x8x4_t, vld1_s8, vst4_s8};
    if r != 8 {
        return 0;
    }
    let n = rows[0].len();
    let panels = n / 8;
    assert!(
        rows.iter().all(|row| row.len() == n) && panels * panel_len <= packed.len() && (quad + 1) * 32 <= panel_len
    );
    let out = packed.as_mut_ptr();
    for p in 0..panels {
        // SAFETY: 8 (p + 1) <= n for every row; the 32 bytes written start
        // at p panel_len + 32 quad and end inside panel p (asserted above).
        unsafe {
            let at = |row: &[i8]| vld1_s8(row.as_ptr().add(8 * p));
            let v = int8x8x4_t(at(rows[0]), at(rows[1]), at(rows[2]), at(rows[3]));
            vst4_s8(out.add(p * panel_len + 32 * quad), v);
        }
    }
    panels * 8
}

#[cfg(not(target_arch = "aarch64"))]
fn interleave_into_panels(_: [&[i8]; 4], _: &mut [i8], _: usize, _: usize, _: usize) -> usize {
    0
}

#[cfg(not(target_arch = "aarch64"))]
fn interleave4_neon(_: [&[i8]; 4], _: &mut [i8]) -> usize {
    0
}

/// tract's k-major packing as [`Layout::lay`] lays it: the bytes the
/// matmul reads (rows below k, columns below n of each panel), zeros
/// elsewhere. tract leaves the others unwritten (garbage in a release build).
#[cfg(test)]
pub(crate) fn k_major_as_laid(tracts: &[u8], k: usize, n: usize, r: usize, panel_len: usize) -> Vec<u8> {
    let mut out = vec![0u8; tracts.len()];
    for p in 0..n.div_ceil(r) {
        let width = r.min(n - p * r);
        for row in 0..k {
            let at = p * panel_len + row * r;
            out[at..at + width].copy_from_slice(&tracts[at..at + width]);
        }
    }
    out
}
