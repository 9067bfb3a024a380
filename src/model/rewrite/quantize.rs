//! A vectorisable QuantizeLinear (f32 to i8) for int8 plans.
//!
//! tract 0.23's `QuantizeLinearI8` rounds each value with a bit-level
//! ties-to-even function the compiler cannot vectorise, one call per
//! element: 0.18 G of 1.24 G instructions per int8 inference on a
//! Cortex-A76 (BENCHMARKS.md). [`replace_quantize_linear`] swaps those nodes
//! for [`Quantize`], which computes the same bytes with `f32::round_ties_even`
//! (one `frintn` per lane on aarch64) in a loop the compiler vectorises.

use anyhow::Result;
use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::QuantizeLinearI8;

/// Replaces the f32 `QuantizeLinearI8` nodes of an optimised model with
/// [`Quantize`]; returns how many were replaced.
pub fn replace_quantize_linear(model: &mut TypedModel) -> Result<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(q) = node.op_as::<ElementWiseOp>().and_then(|op| op.0.downcast_ref::<QuantizeLinearI8>()) else {
            continue;
        };
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() {
            continue;
        }
        let out_dt = model.outlet_fact(OutletId::new(id, 0))?.datum_type;
        if out_dt.unquantized() != i8::datum_type() {
            continue;
        }
        let op = Quantize { scale: q.scale, zero_point: q.zero_point, out_dt };
        model.node_mut(id).op = Box::new(op);
        replaced += 1;
    }
    Ok(replaced)
}

/// `clamp(round_ties_even(x * scale) + zero_point, -128, 127)`, element by
/// element; `scale` is the reciprocal of the ONNX scale, as in tract's op.
/// Values beyond i32 saturate (tract's release build wraps them instead:
/// +inf becomes -128 there, 127 here).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantize {
    pub(super) scale: f32,
    pub(super) zero_point: i8,
    pub(super) out_dt: DatumType,
}

impl Eq for Quantize {}

/// The kernel, on slices of equal length.
pub fn quantize(xs: &[f32], ys: &mut [i8], scale: f32, zero_point: i8) {
    let done = quantize_neon(xs, ys, scale, zero_point);
    let zp = zero_point as i32;
    for (y, x) in ys[done..].iter_mut().zip(&xs[done..]) {
        *y = ((x * scale).round_ties_even() as i32).saturating_add(zp).clamp(-128, 127) as i8;
    }
}

/// [`quantize`] on the longest multiple of 16 elements; returns its length.
#[cfg(target_arch = "aarch64")]
fn quantize_neon(xs: &[f32], ys: &mut [i8], scale: f32, zero_point: i8) -> usize {
    use std::arch::aarch64::{vld1q_f32, vst1q_s8};
    let mut done = 0;
    for (x, y) in xs.chunks_exact(16).zip(ys.chunks_exact_mut(16)) {
        // SAFETY: x and y have 16 elements; 4 i + 4 <= 16.
        let lanes = [0, 4, 8, 12].map(|i| unsafe { vld1q_f32(x.as_ptr().add(i)) });
        unsafe { vst1q_s8(y.as_mut_ptr(), quantize_lanes(lanes, scale, zero_point)) };
        done += 16;
    }
    done
}

#[cfg(not(target_arch = "aarch64"))]
fn quantize_neon(_: &[f32], _: &mut [i8], _: f32, _: i8) -> usize {
    0
}

/// Sixteen values quantized as [`quantize`] does: `fcvtns` rounds to
/// nearest, ties to even, and saturates like `as i32`; the zero point is
/// added with saturation in i16, which clamps the same way (|zero point|
/// <= 128 cannot carry an i16-saturated value back into i8 range).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(super) fn quantize_lanes(
    xs: [std::arch::aarch64::float32x4_t; 4],
    scale: f32,
    zero_point: i8,
) -> std::arch::aarch64::int8x16_t {
    quantize_lanes_by(xs, [scale; 4], zero_point)
}

/// [`quantize_lanes`] with a scale of its own for each of the four vectors.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(super) fn quantize_lanes_by(
    xs: [std::arch::aarch64::float32x4_t; 4],
    scales: [f32; 4],
    zero_point: i8,
) -> std::arch::aarch64::int8x16_t {
    use std::arch::aarch64::*;
    // SAFETY: NEON is part of aarch64; no memory is touched.
    unsafe {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| vcvtnq_s32_f32(vmulq_n_f32(xs[i], scales[i])));
        let zp = vdupq_n_s16(zero_point as i16);
        let lo = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(a), b), zp);
        let hi = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(c), d), zp);
        vqmovn_high_s16(vqmovn_s16(lo), hi)
    }
}

/// Values per row when a quantize is split among threads (a multiple of
/// the 16 the NEON loop takes at a time).
const ROW: usize = 4096;

impl Op for Quantize {
    fn name(&self) -> StaticName {
        "YolodQuantize".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Quantize {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        // SAFETY: `quantize` writes every element.
        let mut output = unsafe { Tensor::uninitialized_dt(i8::datum_type(), input.shape())? };
        let mut plain = output.try_as_plain_ram_mut()?;
        let ys = plain.as_slice_mut::<i8>()?;
        // Runs of ROW values, split among tract's pool with --matmul-threads
        // > 1 (which takes whole rows only), then the last partial run.
        let whole = ys.len() / ROW * ROW;
        let (rows, tail) = ys.split_at_mut(whole);
        if !rows.is_empty() {
            par_chunks_mut(rows, ROW, xs.len(), |first, ys| {
                quantize(&xs[first * ROW..][..ys.len()], ys, self.scale, self.zero_point);
                Ok(())
            })?;
        }
        quantize(&xs[whole..], tail, self.scale, self.zero_point);
        // SAFETY: only the quantisation parameters change, not the layout.
        unsafe { output.set_datum_type(self.out_dt) };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Quantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.out_dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_i8;

    /// The op split among a 4-thread pool (as with --matmul-threads 4), in
    /// rows of ROW values and a partial last one, gives what one pass gives.
    #[test]
    fn split_among_threads_the_op_gives_the_one_pass_values() {
        use tract_linalg::multithread::{Executor, multithread_tract_scope};
        let xs: Vec<f32> = (0..9 * ROW + 77).map(|i| ((i * 7919) % 1001) as f32 * 0.37 - 180.0).collect();
        let mut want = vec![0i8; xs.len()];
        quantize(&xs, &mut want, 0.5, 3);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([xs.len()])).unwrap();
        let op = Quantize { scale: 0.5, zero_point: 3, out_dt: i8::datum_type() };
        let y = model.wire_node("quantize", op, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let plan = model.into_runnable().unwrap();
        let input = tract_onnx::tract_core::ndarray::arr1(&xs).into_tensor().into_tvalue();
        let got = multithread_tract_scope(Executor::multithread(4), || plan.run(tvec![input]).unwrap().remove(0));
        assert_eq!(got.try_as_plain_ram().unwrap().as_slice::<i8>().unwrap(), &want[..]);
    }

    #[test]
    fn matches_tracts_quantize_linear_on_ties_extremes_and_nan() {
        // Extremes first: on aarch64 the bulk (multiples of 16) runs in NEON.
        let mut xs =
            vec![0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e9, -1e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 1e-30];
        xs.extend((-3000..3000).map(|i| i as f32 * 0.25));
        for (scale, zp) in [(1.0, 0), (0.19127132, -127), (3.7, 5), (1.0, 127)] {
            let mut ys = vec![0i8; xs.len()];
            quantize(&xs, &mut ys, scale, zp);
            for (x, y) in xs.iter().zip(&ys) {
                if (x * scale).abs() < 2e9 || x.is_nan() {
                    assert_eq!(*y, quantize_linear_f32_i8(*x, scale, zp as i32), "x {x} scale {scale} zp {zp}");
                } else {
                    assert_eq!(*y, if *x > 0.0 { 127 } else { -128 }, "x {x} saturates");
                }
            }
        }
    }
}
