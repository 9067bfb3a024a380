//! [`Conv`]'s tiles: the whole output by panels, split among tract's pool;
//! the 8 x 8 SDOT tile with its activation in registers on aarch64, and the
//! portable tile, its reference, elsewhere.

use tract_linalg::multithread::{current_threading_panel_threshold, par_chunks_mut};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::ensure;

#[cfg(target_arch = "aarch64")]
use super::super::quantize;
use super::super::silu;
use super::{COLUMNS, Conv, Output, ROWS, has_dot_product};

/// The m x n output, written by tiles from several threads: each writes
/// its own columns of every row.
pub(super) struct Out<T> {
    ptr: *mut T,
    m: usize,
    n: usize,
}

// SAFETY: the threads write disjoint runs of columns (see `Conv::run`).
unsafe impl<T> Sync for Out<T> {}

impl<T: Copy> Out<T> {
    /// `values` into row `row` from column `col`.
    #[inline(always)]
    fn put(&self, row: usize, col: usize, values: &[T]) {
        assert!(row < self.m && col + values.len() <= self.n, "tile out of the output");
        let at = row * self.n + col;
        // SAFETY: inside the m x n output (asserted); no other thread writes
        // these columns. A whole row of a tile is one store of 8 values,
        // not a call to memcpy.
        unsafe {
            match <&[T; 8]>::try_from(values) {
                Ok(eight) => self.ptr.add(at).cast::<[T; 8]>().write_unaligned(*eight),
                Err(_) => std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(at), values.len()),
            }
        }
    }
}

/// An output element type of [`Conv`], and how a tile's rows become it.
#[cfg(target_arch = "aarch64")]
pub(super) trait Element: Copy + Default + Send + 'static + Finish {
    /// One row of accumulators (bias not yet added) into `out`, as
    /// [`Activation`](super::super::activation::Activation) does it.
    fn activate(conv: &Conv, c: usize, acc: &[i32], out: &mut [Self]);
}

#[cfg(not(target_arch = "aarch64"))]
pub(super) trait Element: Copy + Default + Send + 'static {
    /// One row of accumulators (bias not yet added) into `out`, as
    /// [`Activation`](super::super::activation::Activation) does it.
    fn activate(conv: &Conv, c: usize, acc: &[i32], out: &mut [Self]);
}

impl Element for i8 {
    fn activate(conv: &Conv, c: usize, acc: &[i32], out: &mut [i8]) {
        let Output::I8 { q_scale, zero_point, .. } = conv.output else { unreachable!("an int8 output") };
        silu::silu_i8(acc, conv.bias[c], conv.scale[c], q_scale, zero_point, out);
    }
}

impl Element for f32 {
    fn activate(conv: &Conv, c: usize, acc: &[i32], out: &mut [f32]) {
        let (bias, scale) = (conv.bias[c], conv.scale[c]);
        if conv.output == Output::Silu {
            silu::silu_f32(acc, bias, scale, out);
        } else {
            for (y, a) in out.iter_mut().zip(acc) {
                *y = a.wrapping_add(bias) as f32 * scale;
            }
        }
    }
}

impl Conv {
    /// The whole output, by panels of B (each batch's packed input and its
    /// panel length): runs of them split among tract's pool with
    /// --matmul-threads > 1, each panel against every panel of A.
    pub(super) fn run<T: Element>(&self, batches: &[(&[i8], usize)], out: &mut [T]) -> TractResult<()> {
        let plane = batches.len() * self.n;
        ensure!(out.len() == self.m * plane, "YolodConv: output of {} values", out.len());
        let panels = self.n.div_ceil(self.rb);
        let tiles = batches.len() * panels * self.m.div_ceil(self.ra);
        let work = if tiles >= current_threading_panel_threshold() { usize::MAX } else { 0 };
        let out = Out { ptr: out.as_mut_ptr(), m: self.m, n: plane };
        let mut runs = vec![0u8; batches.len() * panels];
        let sdot = self.ra == ROWS && self.rb == COLUMNS && has_dot_product();
        par_chunks_mut(&mut runs, 1, work, |first, run| {
            for i in first..first + run.len() {
                let ((b, b_panel), p) = (batches[i / panels], i % panels);
                let b = &b[p * b_panel..][..b_panel];
                let col = p * self.rb;
                let width = self.rb.min(self.n - col);
                let col = i / panels * self.n + col;
                if sdot {
                    #[cfg(target_arch = "aarch64")]
                    {
                        let groups = self.k.div_ceil(4);
                        assert!(b.len() >= groups * 32 && self.a_panel >= groups * 32);
                        // SAFETY: the CPU has the dot product; every panel
                        // of A and this one of B hold `groups` quads of 32
                        // bytes (asserted here and in `chain_into`).
                        unsafe { self.column_sdot(b.as_ptr(), groups, &out, col, width) };
                    }
                    continue;
                }
                for (j, a) in self.a.chunks_exact(self.a_panel).take(self.m.div_ceil(self.ra)).enumerate() {
                    self.tile_portable(j * self.ra, a, b, &out, col, width);
                }
            }
            Ok(())
        })
    }

    /// Rows `row..` (one panel `a` of A) by one panel `b` of B, whose
    /// first `width` columns go to the output's columns `col..`, in plain
    /// Rust, on any panel widths: the reference for the NEON tiles.
    fn tile_portable<T: Element>(&self, row: usize, a: &[i8], b: &[i8], out: &Out<T>, col: usize, width: usize) {
        let (ra, rb) = (self.ra, self.rb);
        let mut acc = vec![0i32; width];
        let mut values = vec![T::default(); width];
        for r in 0..ra.min(self.m - row) {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = (0..self.k).fold(0i32, |sum, k| {
                    let at = |rr: usize, i: usize| k / 4 * 4 * rr + 4 * i + k % 4;
                    sum.wrapping_add(a[at(ra, r)] as i32 * b[at(rb, j)] as i32)
                });
            }
            T::activate(self, row + r, &acc, &mut values);
            out.put(row + r, col, &values);
        }
    }
}

#[cfg(target_arch = "aarch64")]
impl Conv {
    /// One panel of B (8 columns, the first `width` of which go to the
    /// output's columns `col..`) against every panel of A, by 8 x 8 tiles
    /// of SDOT: accumulator `v(16 + 2r + h)` holds row r, columns 4h..4h +
    /// 4 (B's quad lanes against A's row r), started at the row's bias;
    /// then the activation ([`Finish`]).
    ///
    /// # Safety
    /// The CPU must have the dot product; `b` and every panel of A must
    /// hold `groups` quads of 32 bytes.
    #[target_feature(enable = "dotprod")]
    unsafe fn column_sdot<T: Element>(&self, b: *const i8, groups: usize, out: &Out<T>, col: usize, width: usize) {
        for (j, a) in self.a.chunks_exact(self.a_panel).take(self.m.div_ceil(ROWS)).enumerate() {
            // SAFETY: as the caller vouches.
            unsafe { self.tile_sdot(j * ROWS, a.as_ptr(), b, groups, out, col, width) };
        }
    }

    /// One 8 x 8 tile of [`Conv::column_sdot`], rows `row..`.
    ///
    /// # Safety
    /// As [`Conv::column_sdot`], `a` one panel of A.
    #[target_feature(enable = "dotprod")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_sdot<T: Element>(
        &self,
        row: usize,
        a: *const i8,
        b: *const i8,
        groups: usize,
        out: &Out<T>,
        col: usize,
        width: usize,
    ) {
        use std::arch::aarch64::*;
        let start = |r: usize| vdupq_n_s32(self.bias.get(row + r).copied().unwrap_or(0));
        let [mut c0, mut c2, mut c4, mut c6, mut c8, mut c10, mut c12, mut c14] = [0, 1, 2, 3, 4, 5, 6, 7].map(start);
        let [mut c1, mut c3, mut c5, mut c7, mut c9, mut c11, mut c13, mut c15] = [c0, c2, c4, c6, c8, c10, c12, c14];
        // Sixteen SDOTs: B's two halves (columns 0-3, 4-7) against A's rows
        // 0-3 and 4-7, one row per lane.
        macro_rules! sdot16 {
            ($b0:literal, $b1:literal, $a0:literal, $a1:literal) => {
                concat!(
                    "sdot v16.4s, ",
                    $b0,
                    ".16b, ",
                    $a0,
                    ".4b[0]\n",
                    "sdot v17.4s, ",
                    $b1,
                    ".16b, ",
                    $a0,
                    ".4b[0]\n",
                    "sdot v18.4s, ",
                    $b0,
                    ".16b, ",
                    $a0,
                    ".4b[1]\n",
                    "sdot v19.4s, ",
                    $b1,
                    ".16b, ",
                    $a0,
                    ".4b[1]\n",
                    "sdot v20.4s, ",
                    $b0,
                    ".16b, ",
                    $a0,
                    ".4b[2]\n",
                    "sdot v21.4s, ",
                    $b1,
                    ".16b, ",
                    $a0,
                    ".4b[2]\n",
                    "sdot v22.4s, ",
                    $b0,
                    ".16b, ",
                    $a0,
                    ".4b[3]\n",
                    "sdot v23.4s, ",
                    $b1,
                    ".16b, ",
                    $a0,
                    ".4b[3]\n",
                    "sdot v24.4s, ",
                    $b0,
                    ".16b, ",
                    $a1,
                    ".4b[0]\n",
                    "sdot v25.4s, ",
                    $b1,
                    ".16b, ",
                    $a1,
                    ".4b[0]\n",
                    "sdot v26.4s, ",
                    $b0,
                    ".16b, ",
                    $a1,
                    ".4b[1]\n",
                    "sdot v27.4s, ",
                    $b1,
                    ".16b, ",
                    $a1,
                    ".4b[1]\n",
                    "sdot v28.4s, ",
                    $b0,
                    ".16b, ",
                    $a1,
                    ".4b[2]\n",
                    "sdot v29.4s, ",
                    $b1,
                    ".16b, ",
                    $a1,
                    ".4b[2]\n",
                    "sdot v30.4s, ",
                    $b0,
                    ".16b, ",
                    $a1,
                    ".4b[3]\n",
                    "sdot v31.4s, ",
                    $b1,
                    ".16b, ",
                    $a1,
                    ".4b[3]\n",
                )
            };
        }
        // SAFETY: reads `groups` quads of 32 bytes from each of a and b
        // (the caller's promise); writes only the registers named.
        unsafe {
            std::arch::asm!(
                // An odd quad first, then two per turn of the loop.
                "tbz {g}, #0, 2f",
                "ldp q0, q1, [{b}], #32",
                "ldp q2, q3, [{a}], #32",
                sdot16!("v0", "v1", "v2", "v3"),
                "2:",
                "lsr {g}, {g}, #1",
                "cbz {g}, 4f",
                "3:",
                "ldp q0, q1, [{b}], #32",
                "ldp q2, q3, [{a}], #32",
                "ldp q4, q5, [{b}], #32",
                "ldp q6, q7, [{a}], #32",
                sdot16!("v0", "v1", "v2", "v3"),
                sdot16!("v4", "v5", "v6", "v7"),
                "subs {g}, {g}, #1",
                "b.ne 3b",
                "4:",
                a = inout(reg) a => _,
                b = inout(reg) b => _,
                g = inout(reg) groups => _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                inout("v16") c0, inout("v17") c1, inout("v18") c2, inout("v19") c3,
                inout("v20") c4, inout("v21") c5, inout("v22") c6, inout("v23") c7,
                inout("v24") c8, inout("v25") c9, inout("v26") c10, inout("v27") c11,
                inout("v28") c12, inout("v29") c13, inout("v30") c14, inout("v31") c15,
                options(nostack, readonly),
            );
        }
        let acc = [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15];
        T::finish(self, row, acc, out, col, width);
    }
}

/// The activation of a NEON tile, as [`Element::activate`] computes it,
/// bit for bit: `acc[2r + h]` holds row r's columns 4h..4h + 4, its bias
/// added.
#[cfg(target_arch = "aarch64")]
pub(super) trait Finish: Sized {
    fn finish(
        conv: &Conv,
        row: usize,
        acc: [std::arch::aarch64::int32x4_t; 16],
        out: &Out<Self>,
        col: usize,
        width: usize,
    );
}

#[cfg(target_arch = "aarch64")]
impl Finish for i8 {
    /// Two rows at a time: 16 bytes, 8 per row.
    #[inline(always)]
    fn finish(
        conv: &Conv,
        row: usize,
        acc: [std::arch::aarch64::int32x4_t; 16],
        out: &Out<i8>,
        col: usize,
        width: usize,
    ) {
        use std::arch::aarch64::vst1q_s8;
        let Output::I8 { zero_point, .. } = conv.output else { unreachable!("an int8 output") };
        let rows = ROWS.min(conv.m - row);
        for pair in 0..rows.div_ceil(2) {
            let (r0, r1) = (row + 2 * pair, (row + 2 * pair + 1).min(conv.m - 1));
            let (t, s) = (|c: usize| conv.t_scale[c], |c: usize| conv.q_scale[c]);
            let divided = silu::neon::divided;
            let xs = [
                divided(acc[4 * pair], t(r0)),
                divided(acc[4 * pair + 1], t(r0)),
                divided(acc[4 * pair + 2], t(r1)),
                divided(acc[4 * pair + 3], t(r1)),
            ];
            let bytes = quantize::quantize_lanes_by(xs, [s(r0), s(r0), s(r1), s(r1)], zero_point);
            let mut both = [0i8; 16];
            // SAFETY: `both` holds the 16 bytes stored.
            unsafe { vst1q_s8(both.as_mut_ptr(), bytes) };
            out.put(r0, col, &both[..width]);
            if 2 * pair + 1 < rows {
                out.put(r1, col, &both[8..8 + width]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
impl Finish for f32 {
    /// Row by row: 8 values, the SiLU's (as silu_f32) or the rescale's.
    #[inline(always)]
    fn finish(
        conv: &Conv,
        row: usize,
        acc: [std::arch::aarch64::int32x4_t; 16],
        out: &Out<f32>,
        col: usize,
        width: usize,
    ) {
        use std::arch::aarch64::*;
        for r in 0..ROWS.min(conv.m - row) {
            let c = row + r;
            let (scale, t) = (conv.scale[c], conv.t_scale[c]);
            let mut values = [0f32; 8];
            for h in 0..2 {
                // SAFETY: NEON is part of aarch64; `values` holds 4 h + 4.
                unsafe {
                    let y = match conv.output {
                        Output::Silu => silu::neon::divided(acc[2 * r + h], t),
                        _ => vcvtq_f32_s32(acc[2 * r + h]),
                    };
                    vst1q_f32(values.as_mut_ptr().add(4 * h), vmulq_n_f32(y, scale));
                }
            }
            out.put(c, col, &values[..width]);
        }
    }
}
