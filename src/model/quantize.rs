//! A vectorisable QuantizeLinear (f32 to i8) for int8 plans.
//!
//! tract 0.23's `QuantizeLinearI8` rounds each value with a bit-level
//! ties-to-even function the compiler cannot vectorise, one call per
//! element: 0.18 G of 1.24 G instructions per int8 inference on a
//! Cortex-A76 (BENCHMARKS.md). [`replace_quantize_linear`] swaps those nodes
//! for [`Quantize`], which computes the same bytes with `f32::round_ties_even`
//! (one `frintn` per lane on aarch64) in a loop the compiler vectorises.

use anyhow::Result;
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
        let Some(q) = node.op_as::<ElementWiseOp>().and_then(|op| op.0.downcast_ref::<QuantizeLinearI8>()) else { continue };
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
    let zp = zero_point as i32;
    for (y, x) in ys.iter_mut().zip(xs) {
        *y = ((x * scale).round_ties_even() as i32).saturating_add(zp).clamp(-128, 127) as i8;
    }
}

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
        quantize(xs, output.try_as_plain_ram_mut()?.as_slice_mut::<i8>()?, self.scale, self.zero_point);
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

    #[test]
    fn matches_tracts_quantize_linear_on_ties_extremes_and_nan() {
        let mut xs: Vec<f32> = (-3000..3000).map(|i| i as f32 * 0.25).collect();
        xs.extend([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e9, -1e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0, 1e-30]);
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
