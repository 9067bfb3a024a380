//! A faster int8 im2col for tract's quantized convolutions.
//!
//! tract 0.23 lowers every quantized convolution wider than 1x1 to an
//! `Im2Col` node that gathers the input patches into the packed panels its
//! integer matmul reads. Its patcher feeds them through a generic writer one
//! element at a time, so for int8 models the gather costs more than the
//! matmul it feeds (aarch64 profile in BENCHMARKS.md: 0.87 G of 1.80 G
//! instructions per inference on a Cortex-A76, against 0.35 G of matmul).
//!
//! [`replace_int8_im2col`] swaps those nodes, in an optimised plan, for
//! [`Patches`]: the same output, byte for byte, built from whole rows. Each
//! row of the patch matrix (one input channel at one kernel offset) is read
//! from a padded copy of the channel (16-byte copies, or NEON's
//! de-interleaving load for stride 2), then laid into the panels:
//! contiguous runs for tract's k-major `PackedFormat`, a 4-way interleave
//! for the `PackedI8K4` layout of its dot-product kernels (NEON's `st4`
//! straight into 8-column panels). Nodes it does not cover (groups,
//! layouts other than NCHW and CHW, non-int8 inputs, other packings) keep tract's op.

use std::sync::Arc;

use anyhow::Result;
use tract_linalg::mmm::{EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::nn::DataFormat;

mod layout;
pub(super) use layout::Layout;
#[cfg(test)]
pub(super) use layout::k_major_as_laid;

/// Replaces the int8 `Im2Col` nodes of an optimised model with [`Patches`];
/// returns how many were replaced.
pub fn replace_int8_im2col(model: &mut TypedModel) -> Result<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let Some(im2col) = model.node(id).op_as::<Im2Col>() else { continue };
        let input = model.outlet_fact(model.node(id).inputs[0])?.clone();
        let output = model.outlet_fact(OutletId::new(id, 0))?.clone();
        if let Some(op) = Patches::covering(im2col, &input, &output) {
            model.node_mut(id).op = Box::new(op);
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// Gathers the patches of a 2-D NCHW (or CHW) int8 convolution (one group) into
/// tract's packed matmul input. Inputs: the activations and, optionally,
/// the padding value (the input zero point) as a scalar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patches {
    pool_spec: PoolSpec,
    layout: Layout,
    k: usize,
    format: Box<dyn MMMInputFormat>,
    /// Input shape the plan was optimised for, as (N, C, H, W) (N = 1
    /// when the input has no batch axis, `CHW`).
    input_shape: [usize; 4],
}

impl Patches {
    /// The replacement for `im2col`, when this op covers its case.
    fn covering(im2col: &Im2Col, input: &TypedFact, output: &TypedFact) -> Option<Patches> {
        let spec = &im2col.pool_spec;
        let batched = match spec.data_format {
            DataFormat::NCHW => true,
            DataFormat::CHW => false,
            _ => return None,
        };
        if im2col.group != 1 || spec.kernel_shape.len() != 2 {
            return None;
        }
        if input.datum_type.unquantized() != i8::datum_type() {
            return None;
        }
        let shape = input.shape.as_concrete()?;
        let input_shape: [usize; 4] = match (batched, shape) {
            (true, &[n, c, h, w]) => [n, c, h, w],
            (false, &[c, h, w]) => [1, c, h, w],
            _ => return None,
        };
        let packed = output.exotic_fact()?.downcast_ref::<PackedExoticFact>()?;
        let k = packed.k;
        if k != input_shape[1] * spec.kernel_shape.iter().product::<usize>() {
            return None;
        }
        let format = packed.format.clone();
        let layout = Layout::of(&*format, k)?;
        Some(Patches { pool_spec: spec.clone(), layout, k, format, input_shape })
    }

    /// Output height and width, and the padding before each.
    fn geometry(&self) -> ([usize; 2], [isize; 2]) {
        let hw = &self.input_shape[2..];
        let padding = self.pool_spec.computed_padding(hw);
        (
            [padding[0].convoluted, padding[1].convoluted],
            [padding[0].pad_before as isize, padding[1].pad_before as isize],
        )
    }

    /// Packs one image (C x H x W) into `packed` (panel layout).
    fn pack_image(&self, image: &[i8], pad: i8, packed: &mut [i8]) -> TractResult<()> {
        let [_, c, h, w] = self.input_shape;
        let [kh, kw] = [self.pool_spec.kernel_shape[0], self.pool_spec.kernel_shape[1]];
        let ([oh, ow], [pad_y, pad_x]) = self.geometry();
        let (strides, dilations) = (self.pool_spec.strides(), self.pool_spec.dilations());
        let ([sy, sx], [dy, dx]) = ([strides[0], strides[1]], [dilations[0], dilations[1]]);
        // One channel at a time, with its padding around it: every patch
        // row is then a plain (strided) read, with no bounds to test. The
        // padded plane reaches the last tap of the last output, and SLACK
        // bytes past it let the row copies read whole vectors.
        let (pad_y, pad_x) = (pad_y.max(0) as usize, pad_x.max(0) as usize);
        let pw = (w + pad_x).max((ow.max(1) - 1) * sx + (kw - 1) * dx + 1);
        let ph = (h + pad_y).max((oh.max(1) - 1) * sy + (kh - 1) * dy + 1);
        // Each run of columns (output positions) gets its own plane, in
        // which only the rows its outputs read are filled.
        self.layout.lay(c * kh * kw, oh * ow, packed, |cols| {
            let (yo0, yo1) = (cols.start / ow, cols.end.div_ceil(ow));
            let read = yo0 * sy..(yo1 - 1) * sy + (kh - 1) * dy + 1;
            let mut padded = vec![pad; ph * pw + SLACK];
            let mut channel = usize::MAX;
            move |k, line| {
                let (ci, ky, kx) = (k / (kh * kw), k / kw % kh, k % kw);
                if ci != channel {
                    channel = ci;
                    for (y, src) in image[ci * h * w..][..h * w].chunks_exact(w).enumerate() {
                        if read.contains(&(y + pad_y)) {
                            padded[(y + pad_y) * pw + pad_x..][..w].copy_from_slice(src);
                        }
                    }
                }
                // Output rows are written in order, so each may spill whole
                // vectors into the next one's bytes, which that overwrites:
                // `out` runs to the end of `line`, and only `len` bytes count.
                let at = |yo: usize, x0: usize| (yo * sy + ky * dy) * pw + kx * dx + x0 * sx;
                // A run of columns may start and end inside an output row:
                // the part rows first and last, the whole rows between.
                let (head, whole) = match cols.start % ow {
                    0 => (0, yo0),
                    x0 => {
                        let len = (cols.end - yo0 * ow).min(ow) - x0;
                        strided_rows(line, 1, len, &padded[at(yo0, x0)..], 0, sx);
                        (len, yo0 + 1)
                    }
                };
                let end = (cols.end / ow).max(whole);
                if end > whole {
                    strided_rows(&mut line[head..], end - whole, ow, &padded[at(whole, 0)..], sy * pw, sx);
                }
                if end < yo1 {
                    let len = cols.end - end * ow;
                    strided_rows(&mut line[head + (end - whole) * ow..], 1, len, &padded[at(end, 0)..], 0, sx);
                }
            }
        })
    }
}

/// `count` rows of `len` values into `out`, one after the other: row i
/// from `src[i * step..]`, every `sx`-th byte. Each row may spill whole
/// vectors into the next one's bytes, which that overwrites (see
/// [`copy_run`]); the match is outside the loops, which are the hot ones.
#[inline(always)]
fn strided_rows(out: &mut [i8], count: usize, len: usize, src: &[i8], step: usize, sx: usize) {
    // At 320 most rows are 10 to 40 bytes, one to three vectors: checking
    // the bounds once for a run of rows, not per row, more than halves the
    // instructions per row. The last row of a line has no room to spill
    // past it, so it may be left to the per-row copies.
    let spill = len.next_multiple_of(16);
    let fits = |rows: usize, read: usize| {
        rows > 0 && out.len() >= (rows - 1) * len + spill && src.len() >= (rows - 1) * step + read
    };
    let fast = |read: usize| {
        if fits(count, read) {
            count
        } else if fits(count.saturating_sub(1), read) {
            count - 1
        } else {
            0
        }
    };
    match sx {
        1 => {
            let done = fast(spill);
            // SAFETY: row i < done writes out[i len..i len + spill] and
            // reads src[i step..i step + spill], inside both (`fits`).
            unsafe { copy_rows(out.as_mut_ptr(), done, len, src.as_ptr(), step, spill) };
            (done..count).for_each(|i| copy_run(&mut out[i * len..], len, &src[i * step..]));
        }
        2 => {
            let done = every_other_rows_neon(out, fast(2 * spill), len, src, step);
            (done..count).for_each(|i| every_other(&mut out[i * len..], len, &src[i * step..]));
        }
        _ => (0..count).for_each(|i| {
            out[i * len..][..len].iter_mut().zip(src[i * step..].iter().step_by(sx)).for_each(|(o, s)| *o = *s)
        }),
    }
}

/// [`strided_rows`] for `sx` = 1 once its bounds are checked: `count` rows,
/// each `spill` bytes (a multiple of 16) from `src + i * step` to
/// `out + i * len`.
///
/// # Safety
/// `out` must hold `(count - 1) * len + spill` bytes and `src`
/// `(count - 1) * step + spill`, in two different buffers.
#[inline(always)]
unsafe fn copy_rows(mut out: *mut i8, count: usize, len: usize, mut src: *const i8, step: usize, spill: usize) {
    for _ in 0..count {
        // SAFETY: inside the bounds the caller vouches for.
        unsafe {
            for at in (0..spill).step_by(16) {
                std::ptr::copy_nonoverlapping(src.add(at), out.add(at), 16);
            }
            out = out.add(len);
            src = src.add(step);
        }
    }
}

/// [`strided_rows`] for `sx` = 2 on its first `count` rows, whose bounds
/// it checked (`out` holds `(count - 1) * len + spill` bytes, `src`
/// `(count - 1) * step + 2 spill`): each row by NEON's de-interleaving
/// load, as [`every_other_neon`] does. Returns how many rows it did (none
/// where NEON is not there).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn every_other_rows_neon(out: &mut [i8], count: usize, len: usize, src: &[i8], step: usize) -> usize {
    use std::arch::aarch64::{vld2q_s8, vst1q_s8};
    if count == 0 {
        return 0;
    }
    let spill = len.next_multiple_of(16);
    assert!(out.len() >= (count - 1) * len + spill && src.len() >= (count - 1) * step + 2 * spill);
    let (o, s) = (out.as_mut_ptr(), src.as_ptr());
    for i in 0..count {
        for at in (0..spill).step_by(16) {
            // SAFETY: i len + at + 16 <= (count - 1) len + spill and
            // i step + 2 (at + 16) <= (count - 1) step + 2 spill (asserted
            // above); NEON is part of aarch64.
            unsafe { vst1q_s8(o.add(i * len + at), vld2q_s8(s.add(i * step + 2 * at)).0) };
        }
    }
    count
}

#[cfg(not(target_arch = "aarch64"))]
fn every_other_rows_neon(_: &mut [i8], _: usize, _: usize, _: &[i8], _: usize) -> usize {
    0
}

/// Bytes the padded plane has past its end, so that row reads may run over.
const SLACK: usize = 64;

/// The first `n` bytes of `src` to `out`, 16 at a time; bytes of `out`
/// past `n` may be written too. When `out` has no room for the last 16
/// past `n`, the last 16 overlap the ones before instead.
#[inline(always)]
fn copy_run(out: &mut [i8], n: usize, src: &[i8]) {
    let spill = n.next_multiple_of(16);
    let (o, s) = (out.as_mut_ptr(), src.as_ptr());
    if out.len() >= spill && src.len() >= spill {
        // SAFETY: 16-byte copies at offsets below `spill`, which both
        // slices hold.
        unsafe {
            for at in (0..spill).step_by(16) {
                std::ptr::copy_nonoverlapping(s.add(at), o.add(at), 16);
            }
        }
    } else if n < 16 {
        out[..n].copy_from_slice(&src[..n]);
    } else {
        assert!(src.len() >= n && out.len() >= n);
        // SAFETY: every copy is of 16 bytes at an offset at most n - 16, and
        // both slices hold n bytes or more.
        unsafe {
            let mut at = 0;
            while at + 16 < n {
                std::ptr::copy_nonoverlapping(s.add(at), o.add(at), 16);
                at += 16;
            }
            std::ptr::copy_nonoverlapping(s.add(n - 16), o.add(n - 16), 16);
        }
    }
}

/// `out[i] = src[2 i]` for i < n; bytes of `out` past `n` may be written
/// too (as [`copy_run`]). `src` has SLACK bytes more than that needs.
#[inline(always)]
fn every_other(out: &mut [i8], n: usize, src: &[i8]) {
    let spill = n.next_multiple_of(16);
    let room = if out.len() >= spill && src.len() >= 2 * spill { spill } else { n / 16 * 16 };
    let done = every_other_neon(&mut out[..room], src);
    for (i, o) in out[..n].iter_mut().enumerate().skip(done) {
        *o = src[2 * i];
    }
}

/// The first multiple of 16 outputs of `every_other`, by NEON's
/// de-interleaving load (`ld2`: 32 bytes in, the even ones kept); returns
/// how many it did.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn every_other_neon(out: &mut [i8], src: &[i8]) -> usize {
    use std::arch::aarch64::{vld2q_s8, vst1q_s8};
    let done = out.len() / 16 * 16;
    assert!(src.len() >= 2 * done);
    let (o, s) = (out.as_mut_ptr(), src.as_ptr());
    for at in (0..done).step_by(16) {
        // SAFETY: 2 (at + 16) <= 2 done <= src.len() and at + 16 <= done
        // <= out.len(); NEON is part of aarch64.
        unsafe { vst1q_s8(o.add(at), vld2q_s8(s.add(2 * at)).0) };
    }
    done
}

#[cfg(not(target_arch = "aarch64"))]
fn every_other_neon(_: &mut [i8], _: &[i8]) -> usize {
    0
}

impl Op for Patches {
    fn name(&self) -> StaticName {
        "YolodPatches".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Patches {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let [batches, c, h, w] = self.input_shape;
        let expected: &[usize] =
            if self.pool_spec.data_format.has_n() { &self.input_shape } else { &self.input_shape[1..] };
        ensure!(input.shape() == expected, "YolodPatches: input {:?}, planned for {:?}", input.shape(), expected);
        ensure!(input.datum_type().unquantized() == i8::datum_type(), "YolodPatches: {:?} input", input.datum_type());
        let pad = match inputs.get(1) {
            Some(t) => t.cast_to_scalar::<i32>()? as i8,
            None => 0,
        };
        let (r, panel_len, align) = self.layout.panels();
        let ([oh, ow], _) = self.geometry();
        let n = oh * ow;
        // SAFETY: the datum type is i8 (possibly with quantisation parameters).
        let data = unsafe { input.as_slice_unchecked::<i8>() };
        let mut values: TVec<Box<dyn MMMInputValue>> = tvec!();
        for b in 0..batches {
            let len = n.div_ceil(r) * panel_len;
            // SAFETY: `lay` writes every byte.
            let mut blob = unsafe { Blob::new_for_size_and_align(len, align) };
            let bytes = blob.as_bytes_mut();
            if n > 0 {
                // SAFETY: i8 and u8 have the same size and alignment.
                let packed = unsafe { &mut *(bytes as *mut [u8] as *mut [i8]) };
                self.pack_image(&data[b * c * h * w..][..c * h * w], pad, packed)?;
            }
            values.push(Box::new(EagerPackedInput {
                fact: PackedExoticFact { format: self.format.clone(), k: self.k, mn: n.to_dim() },
                packed: Arc::new(blob),
                panel_bytes: if n > 0 { panel_len } else { 0 },
                mn: n,
            }));
        }
        let output = PackedMatrixStorage::new_batched(&[batches, 1], values).into_tensor(input.datum_type());
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Patches {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let ([oh, ow], _) = self.geometry();
        let fact = PackedExoticFact { format: self.format.clone(), k: self.k, mn: (oh * ow).to_dim() };
        Ok(tvec!(inputs[0].datum_type.fact([self.input_shape[0], 1]).with_exotic_fact(fact)))
    }

    as_op!();
}

#[cfg(test)]
mod tests;
