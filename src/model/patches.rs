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
//! row of the patch matrix (one input channel at one kernel offset) is
//! assembled with slice copies, then laid into the panels: contiguous runs
//! for tract's k-major `PackedFormat`, a 4-way interleave for the `PackedI8K4`
//! layout of its dot-product kernels. Nodes it does not cover (groups,
//! layouts other than NCHW and CHW, non-int8 inputs, other packings) keep tract's op.

use std::sync::Arc;

use anyhow::Result;
use tract_linalg::mmm::{EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::nn::DataFormat;

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

/// How the patch matrix is laid out for the matmul kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    /// `PackedFormat`: panels of `r` columns, k-major inside a panel:
    /// element (k, m) at `k * r + m`.
    KMajor { r: usize, panel_len: usize, align: usize },
    /// `PackedI8K4`: panels of `r` columns, k in groups of 4 innermost:
    /// element (k, m) at `(k / 4) * 4r + 4m + k % 4`.
    K4 { r: usize, panel_len: usize, align: usize },
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
        let layout = if let Some(f) = format.downcast_ref::<PackedFormat>() {
            if f.dt.unquantized() != i8::datum_type() {
                return None;
            }
            Layout::KMajor { r: f.r, panel_len: f.single_panel_len(k), align: f.alignment() }
        } else if let Some(f) = format.downcast_ref::<PackedI8K4>() {
            Layout::K4 { r: f.r, panel_len: f.single_panel_len(k), align: f.alignment() }
        } else {
            return None;
        };
        Some(Patches { pool_spec: spec.clone(), layout, k, format, input_shape })
    }

    /// Output height and width, and the padding before each.
    fn geometry(&self) -> ([usize; 2], [isize; 2]) {
        let hw = &self.input_shape[2..];
        let padding = self.pool_spec.computed_padding(hw);
        ([padding[0].convoluted, padding[1].convoluted], [padding[0].pad_before as isize, padding[1].pad_before as isize])
    }

    /// Row `(channel, ky, kx)` of the patch matrix for image `plane` (H x W):
    /// the input value under that kernel tap for every output position.
    fn gather_row(&self, plane: &[i8], tap: [usize; 2], pad: i8, row: &mut [i8]) {
        let [h, w] = [self.input_shape[2] as isize, self.input_shape[3] as isize];
        let ([oh, ow], [pad_y, pad_x]) = self.geometry();
        let strides = self.pool_spec.strides();
        let dilations = self.pool_spec.dilations();
        let (sy, sx) = (strides[0] as isize, strides[1] as isize);
        let dy = tap[0] as isize * dilations[0] as isize - pad_y;
        let dx = tap[1] as isize * dilations[1] as isize - pad_x;
        // Output columns whose input column x = xo * sx + dx is inside the image.
        let first = if dx < 0 { (-dx + sx - 1) / sx } else { 0 }.min(ow as isize) as usize;
        let end = if w - dx > 0 { ((w - dx + sx - 1) / sx).min(ow as isize) } else { 0 }.max(first as isize) as usize;
        for (yo, out) in row.chunks_exact_mut(ow).take(oh).enumerate() {
            let y = yo as isize * sy + dy;
            if y < 0 || y >= h {
                out.fill(pad);
                continue;
            }
            let line = &plane[(y * w) as usize..][..w as usize];
            out[..first].fill(pad);
            out[end..].fill(pad);
            let x0 = (first as isize * sx + dx) as usize;
            let out = &mut out[first..end];
            match sx {
                1 => out.copy_from_slice(&line[x0..x0 + out.len()]),
                // Every other byte: pairs, so that the compiler can use
                // de-interleaving loads (the last pair may be cut short).
                2 if !out.is_empty() => {
                    let (last, body) = out.split_last_mut().expect("not empty");
                    for (o, pair) in body.iter_mut().zip(line[x0..].chunks_exact(2)) {
                        *o = pair[0];
                    }
                    *last = line[x0 + 2 * body.len()];
                }
                _ => {
                    for (o, x) in out.iter_mut().zip((x0..).step_by(sx as usize)) {
                        *o = line[x];
                    }
                }
            }
        }
    }

    /// Packs one image (C x H x W) into `packed` (zeroed, panel layout).
    fn pack_image(&self, image: &[i8], pad: i8, packed: &mut [i8]) {
        let [_, c, h, w] = self.input_shape;
        let [kh, kw] = [self.pool_spec.kernel_shape[0], self.pool_spec.kernel_shape[1]];
        let ([oh, ow], _) = self.geometry();
        let n = oh * ow;
        let taps = (0..c).flat_map(|ci| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (ci, [ky, kx]))));
        match self.layout {
            Layout::KMajor { r, panel_len, .. } => {
                let mut row = vec![0i8; n];
                for (k, (ci, tap)) in taps.enumerate() {
                    self.gather_row(&image[ci * h * w..][..h * w], tap, pad, &mut row);
                    match r {
                        4 => scatter::<4>(&row, packed, k, panel_len),
                        8 => scatter::<8>(&row, packed, k, panel_len),
                        16 => scatter::<16>(&row, packed, k, panel_len),
                        _ => {
                            for (chunk, panel) in row.chunks(r).zip(packed.chunks_mut(panel_len)) {
                                panel[k * r..][..chunk.len()].copy_from_slice(chunk);
                            }
                        }
                    }
                }
            }
            Layout::K4 { r, panel_len, .. } => {
                let taps: Vec<_> = taps.collect();
                let mut rows = vec![0i8; 4 * n];
                let mut quads = vec![0i8; 4 * n];
                for (quad, group) in taps.chunks(4).enumerate() {
                    // Rows past k must be zero: the kernel accumulates them.
                    rows[group.len() * n..].fill(0);
                    for (row, &(ci, tap)) in rows.chunks_exact_mut(n).zip(group) {
                        self.gather_row(&image[ci * h * w..][..h * w], tap, pad, row);
                    }
                    let (a, rest) = rows.split_at(n);
                    let (b, rest) = rest.split_at(n);
                    let (c2, d) = rest.split_at(n);
                    // All n columns at once, then 4r-byte runs into the panels.
                    interleave4([a, b, c2, d], &mut quads);
                    match r {
                        4 => scatter::<16>(&quads, packed, quad, panel_len),
                        8 => scatter::<32>(&quads, packed, quad, panel_len),
                        16 => scatter::<64>(&quads, packed, quad, panel_len),
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
    let [a, b, c, d] = rows;
    let columns = a.iter().zip(b).zip(c).zip(d);
    for (q, (((&a, &b), &c), &d)) in out.chunks_exact_mut(4).zip(columns) {
        let word = u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]);
        q.copy_from_slice(&word.to_le_bytes().map(|x| x as i8));
    }
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
        let expected: &[usize] = if self.pool_spec.data_format.has_n() { &self.input_shape } else { &self.input_shape[1..] };
        ensure!(input.shape() == expected, "YolodPatches: input {:?}, planned for {:?}", input.shape(), expected);
        ensure!(input.datum_type().unquantized() == i8::datum_type(), "YolodPatches: {:?} input", input.datum_type());
        let pad = match inputs.get(1) {
            Some(t) => t.cast_to_scalar::<i32>()? as i8,
            None => 0,
        };
        let (r, panel_len, align) = match self.layout {
            Layout::KMajor { r, panel_len, align } | Layout::K4 { r, panel_len, align } => (r, panel_len, align),
        };
        let ([oh, ow], _) = self.geometry();
        let n = oh * ow;
        // SAFETY: the datum type is i8 (possibly with quantisation parameters).
        let data = unsafe { input.as_slice_unchecked::<i8>() };
        let mut values: TVec<Box<dyn MMMInputValue>> = tvec!();
        for b in 0..batches {
            let len = n.div_ceil(r) * panel_len;
            // SAFETY: every byte is written by the fill before it is read.
            let mut blob = unsafe { Blob::new_for_size_and_align(len, align) };
            let bytes = blob.as_bytes_mut();
            bytes.fill(0);
            if n > 0 {
                // SAFETY: i8 and u8 have the same size and alignment.
                let packed = unsafe { &mut *(bytes as *mut [u8] as *mut [i8]) };
                self.pack_image(&data[b * c * h * w..][..c * h * w], pad, packed);
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
#[path = "patches_tests.rs"]
mod tests;
