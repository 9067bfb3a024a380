//! One pass from a convolution's i32 accumulators to its activation.
//!
//! In an optimised int8 plan tract ends every integer convolution with a
//! chain of whole-tensor ops: the i32 bias add (when it is not fused in the
//! matmul; ndarray's broadcasting loop, about 6 instructions per element on
//! a Cortex-A76), the cast to f32, the per-channel rescale, the SiLU and the
//! QuantizeLinear of the next layer. [`fuse_activations`] replaces each such
//! chain with one [`Activation`] node, which does the same arithmetic in
//! the same order, channel by channel, through a buffer that stays in L1:
//! the same values, bit for bit, without four full tensors written and read.

use anyhow::Result;
use tract_linalg::Func;
use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{OptBinByScalar, TypedBinOp};
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Add, Mul};
use tract_onnx::tract_core::ops::nn::Silu;

use super::quantize::{Quantize, quantize};
use super::silu;

/// Elements per pass through the scratch buffer: 16 KiB of f32.
const CHUNK: usize = 4096;

/// Replaces each `[i32 bias add] -> cast to f32 -> per-channel multiply
/// [-> SiLU [-> quantize]]` chain of an optimised model with one
/// [`Activation`]; returns how many chains were fused. Runs after
/// [`super::quantize::replace_quantize_linear`], whose op it absorbs.
/// `own_silu`: use `silu`'s kernel (the same values on every machine), not
/// tract's; then values may differ from tract's plan by one int8 step.
pub fn fuse_activations(model: &mut TypedModel, own_silu: bool) -> Result<usize> {
    let mut fused = 0;
    for id in 0..model.nodes().len() {
        let Some((mut op, input, last)) = chain_from_cast(model, id)? else { continue };
        op.own_silu = own_silu && op.silu;
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, input)?;
        let out = patch.wire_node(format!("{}.activation", model.node(id).name), op, &[tap])?;
        patch.shunt_outside(model, OutletId::new(last, 0), out[0])?;
        patch.apply(model)?;
        fused += 1;
    }
    Ok(fused)
}

/// The fused op for the chain around the cast node `id`, its i32 input and
/// the chain's last node, when the chain has the expected shape.
fn chain_from_cast(model: &TypedModel, id: usize) -> Result<Option<(Activation, OutletId, usize)>> {
    let cast = model.node(id);
    let Some(op) = cast.op_as::<Cast>() else { return Ok(None) };
    if op.to != f32::datum_type() || model.outlet_fact(cast.inputs[0])?.datum_type != i32::datum_type() {
        return Ok(None);
    }
    let Some(shape) = model.outlet_fact(cast.inputs[0])?.shape.as_concrete().map(|s| s.to_vec()) else {
        return Ok(None);
    };
    // The bias add before the cast, when its only reader is the cast.
    let mut input = cast.inputs[0];
    let mut bias = None;
    let before = model.node(input.node);
    if only_reader(model, input, id)
        && before.op_as::<TypedBinOp>().is_some_and(|op| op.0.is::<Add>() && op.1.is_none())
        && let Some(konst) = model.outlet_fact(before.inputs[1])?.konst.clone()
        && konst.datum_type() == i32::datum_type()
        && model.outlet_fact(before.inputs[0])?.shape.as_concrete() == Some(&shape)
    {
        bias = Some(konst);
        input = before.inputs[0];
    }
    // The rescale: the cast's only reader multiplies by a constant.
    let Some(mul) = sole_reader(model, id) else { return Ok(None) };
    let is_mul = mul.op_as::<OptBinByScalar>().is_some_and(|op| op.binop.is::<Mul>())
        || mul.op_as::<TypedBinOp>().is_some_and(|op| op.0.is::<Mul>() && op.1.is_none());
    if !is_mul || mul.inputs[0] != OutletId::new(id, 0) {
        return Ok(None);
    }
    let Some(scale) = model.outlet_fact(mul.inputs[1])?.konst.clone() else { return Ok(None) };
    if scale.datum_type() != f32::datum_type()
        || model.outlet_fact(OutletId::new(mul.id, 0))?.shape.as_concrete() != Some(&shape)
    {
        return Ok(None);
    }
    let Some((axis, scale, bias)) = per_channel(&shape, &scale, bias.as_deref()) else { return Ok(None) };
    let mut op = Activation { axis, bias, scale, silu: false, own_silu: false, quantize: None };
    let mut last = mul.id;
    if let Some(silu) = sole_reader(model, last)
        .filter(|n| n.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<Silu>() && op.1.is_none()))
    {
        op.silu = true;
        last = silu.id;
        if let Some(q) = sole_reader(model, last).and_then(|n| n.op_as::<Quantize>().map(|q| (n.id, q))) {
            op.quantize = Some(q.1.clone());
            last = q.0;
        }
    }
    Ok(Some((op, input, last)))
}

/// Whether `reader` is the only node reading `outlet`, which is not a model output.
fn only_reader(model: &TypedModel, outlet: OutletId, reader: usize) -> bool {
    let successors = &model.node(outlet.node).outputs[outlet.slot].successors;
    successors.len() == 1 && successors[0].node == reader && !model.outputs.contains(&outlet)
}

/// The only node reading node `id`'s single output, which is not a model output.
fn sole_reader(model: &TypedModel, id: usize) -> Option<&TypedNode> {
    let node = model.node(id);
    let outlet = OutletId::new(id, 0);
    if node.outputs.len() != 1 || node.outputs[0].successors.len() != 1 || model.outputs.contains(&outlet) {
        return None;
    }
    Some(model.node(node.outputs[0].successors[0].node))
}

/// The axis a per-channel scale (and bias) runs along in a tensor of
/// `shape`, with their values; both broadcast from one axis (or none).
fn per_channel(shape: &[usize], scale: &Tensor, bias: Option<&Tensor>) -> Option<(usize, Vec<f32>, Vec<i32>)> {
    // The one axis where a constant is not 1, right-aligned as numpy broadcasts.
    let axis_of = |t: &Tensor| -> Option<Option<usize>> {
        let offset = shape.len().checked_sub(t.rank())?;
        let mut axes = t.shape().iter().enumerate().filter(|(_, d)| **d != 1).map(|(i, d)| (i + offset, *d));
        match (axes.next(), axes.next()) {
            (None, _) => Some(None),
            (Some((axis, d)), None) if shape[axis] == d => Some(Some(axis)),
            _ => None,
        }
    };
    let scale_axis = axis_of(scale)?;
    let bias_axis = match bias {
        Some(b) => axis_of(b)?,
        None => None,
    };
    let axis = match (scale_axis, bias_axis) {
        (Some(a), Some(b)) if a != b => return None,
        (a, b) => a.or(b).unwrap_or(0),
    };
    let channels = shape.get(axis).copied().unwrap_or(1);
    let scale = spread(scale.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?, channels)?;
    let bias = match bias {
        Some(b) => spread(b.try_as_plain_ram().ok()?.as_slice::<i32>().ok()?, channels)?,
        None => vec![0; channels],
    };
    Some((axis, scale, bias))
}

/// `values` as one per channel: as they are, or a single one repeated.
fn spread<T: Copy>(values: &[T], channels: usize) -> Option<Vec<T>> {
    match values {
        [one] => Some(vec![*one; channels]),
        _ => (values.len() == channels).then(|| values.to_vec()),
    }
}

/// `quantize(silu(f32(acc + bias[c]) * scale[c]))`, element by element, c
/// the index along `axis`; the SiLU and the quantization are optional. The
/// SiLU is tract's own kernel for this machine, so values match its plan's,
/// unless `own_silu` asks for `silu`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    pub(super) axis: usize,
    pub(super) bias: Vec<i32>,
    pub(super) scale: Vec<f32>,
    pub(super) silu: bool,
    pub(super) own_silu: bool,
    pub(super) quantize: Option<Quantize>,
}

impl Eq for Activation {}

impl Activation {
    /// Rescales one run of accumulators of channel `c` into `ys` (same length).
    fn rescale(&self, c: usize, acc: &[i32], ys: &mut [f32]) {
        let (bias, scale) = (self.bias[c], self.scale[c]);
        for (y, a) in ys.iter_mut().zip(acc) {
            *y = a.wrapping_add(bias) as f32 * scale;
        }
    }
}

impl Op for Activation {
    fn name(&self) -> StaticName {
        "YolodActivation".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Activation {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let shape = input.shape();
        ensure!(input.strides() == &*Tensor::natural_strides(shape), "activation input is not contiguous");
        ensure!(
            shape.get(self.axis).copied().unwrap_or(1) == self.scale.len(),
            "activation input {shape:?} has the wrong channel count"
        );
        let acc = input.try_as_plain_ram()?.as_slice::<i32>()?;
        // One plane per channel and outer index: the rows the passes below
        // split among tract's pool when --matmul-threads asks for more than
        // one thread (each row is one channel's run of values).
        let plane: usize = shape.iter().skip(self.axis + 1).product::<usize>().max(1);
        let work = acc.len() * WORK_PER_ELEMENT;
        match &self.quantize {
            Some(q) => {
                // SAFETY: every element is written below (the rows cover the tensor).
                let mut output = unsafe { Tensor::uninitialized_dt(i8::datum_type(), shape)? };
                let mut plain = output.try_as_plain_ram_mut()?;
                let ys = plain.as_slice_mut::<i8>()?;
                if !ys.is_empty() {
                    par_chunks_mut(ys, plane, work, |first, ys| {
                        self.rows_i8(q, plane, &acc[first * plane..], first, ys)
                    })?;
                }
                // SAFETY: only the quantisation parameters change, not the layout.
                unsafe { output.set_datum_type(q.out_dt) };
                Ok(tvec!(output.into_tvalue()))
            }
            None => {
                // SAFETY: as above.
                let mut output = unsafe { Tensor::uninitialized::<f32>(shape)? };
                let mut plain = output.try_as_plain_ram_mut()?;
                let ys = plain.as_slice_mut::<f32>()?;
                if !ys.is_empty() {
                    par_chunks_mut(ys, plane, work, |first, ys| {
                        self.rows_f32(plane, &acc[first * plane..], first, ys)
                    })?;
                }
                Ok(tvec!(output.into_tvalue()))
            }
        }
    }
}

/// What one element of [`Activation`] costs against one of tract's
/// element-wise ops, whose element count its pool's threshold is set in:
/// the rescale, SiLU and quantize are several such ops in one.
const WORK_PER_ELEMENT: usize = 4;

impl Activation {
    /// The rows (planes of `plane` values) `first..` of a quantized output:
    /// `acc` starts at row `first`, `ys` holds whole rows.
    fn rows_i8(&self, q: &Quantize, plane: usize, acc: &[i32], first: usize, ys: &mut [i8]) -> TractResult<()> {
        let silu = if self.silu { Some(Func::Silu.ew_f32()?) } else { None };
        let mut buffer = vec![0f32; CHUNK.min(plane)];
        for (row, (acc, ys)) in acc.chunks(plane).zip(ys.chunks_mut(plane)).enumerate() {
            let c = (first + row) % self.scale.len();
            for (acc, ys) in acc.chunks(CHUNK).zip(ys.chunks_mut(CHUNK)) {
                let done = if self.own_silu {
                    silu::silu_i8(acc, self.bias[c], self.scale[c], q.scale, q.zero_point, ys)
                } else {
                    0
                };
                let buf = &mut buffer[..acc.len() - done];
                self.rescale(c, &acc[done..], buf);
                if let Some(silu) = silu.as_ref().filter(|_| !buf.is_empty()) {
                    silu.run(buf)?;
                }
                quantize(buf, &mut ys[done..], q.scale, q.zero_point);
            }
        }
        Ok(())
    }

    /// As [`Activation::rows_i8`], for an f32 output.
    fn rows_f32(&self, plane: usize, acc: &[i32], first: usize, ys: &mut [f32]) -> TractResult<()> {
        let silu = if self.silu { Some(Func::Silu.ew_f32()?) } else { None };
        for (row, (acc, ys)) in acc.chunks(plane).zip(ys.chunks_mut(plane)).enumerate() {
            let c = (first + row) % self.scale.len();
            for (acc, ys) in acc.chunks(CHUNK).zip(ys.chunks_mut(CHUNK)) {
                let done = if self.own_silu { silu::silu_f32(acc, self.bias[c], self.scale[c], ys) } else { 0 };
                let run = &mut ys[done..];
                self.rescale(c, &acc[done..], run);
                if let Some(silu) = silu.as_ref().filter(|_| !run.is_empty()) {
                    silu.run(run)?;
                }
            }
        }
        Ok(())
    }
}

impl TypedOp for Activation {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = self.quantize.as_ref().map_or(f32::datum_type(), |q| q.out_dt);
        Ok(tvec!(dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 channels of 70x70 accumulators (each channel crosses a CHUNK
    /// boundary), with a bias and a scale per channel.
    fn accumulators() -> (Tensor, Vec<i32>, Vec<f32>) {
        (random_accumulators((1, 3, 70, 70), 0x9e37_79b9), vec![5, -7, 3_000], vec![0.001, 0.0005, 0.0002])
    }

    /// Accumulators in -10 000..=10 000 of the given shape (xorshift from `seed`).
    fn random_accumulators(shape: (usize, usize, usize, usize), mut seed: u32) -> Tensor {
        let values: Vec<i32> = (0..shape.0 * shape.1 * shape.2 * shape.3)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed % 20_001) as i32 - 10_000
            })
            .collect();
        tract_onnx::tract_core::ndarray::Array4::from_shape_vec(shape, values).unwrap().into()
    }

    fn run(op: Activation, acc: &Tensor) -> Tensor {
        let mut model = TypedModel::default();
        let x = model.add_source("acc", TypedFact::dt_shape(i32::datum_type(), acc.shape())).unwrap();
        let y = model.wire_node("activation", op, &[x]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let plan = model.into_runnable().unwrap();
        plan.run(tvec![acc.clone().into_tvalue()]).unwrap().remove(0).into_tensor()
    }

    fn activation(bias: &[i32], scale: &[f32], silu: bool, own_silu: bool, quantize: Option<Quantize>) -> Activation {
        Activation { axis: 1, bias: bias.to_vec(), scale: scale.to_vec(), silu, own_silu, quantize }
    }

    /// `f32(acc + bias[c]) * scale[c]`, and its SiLU, element by element.
    fn reference(acc: &Tensor, bias: &[i32], scale: &[f32], silu: bool) -> Vec<f32> {
        let plane = 70 * 70;
        let acc = acc.try_as_plain_ram().unwrap();
        let acc = acc.as_slice::<i32>().unwrap();
        acc.iter()
            .enumerate()
            .map(|(i, a)| {
                let c = i / plane;
                let x = a.wrapping_add(bias[c]) as f32 * scale[c];
                if silu { (x as f64 / (1.0 + (-x as f64).exp())) as f32 } else { x }
            })
            .collect()
    }

    fn values<T: Datum + Copy>(t: &Tensor) -> Vec<T> {
        t.try_as_plain_ram().unwrap().as_slice::<T>().unwrap().to_vec()
    }

    #[test]
    fn the_rescale_alone_is_the_chains_arithmetic_bit_for_bit() {
        let (acc, bias, scale) = accumulators();
        let got = values::<f32>(&run(activation(&bias, &scale, false, false, None), &acc));
        assert_eq!(got, reference(&acc, &bias, &scale, false));
    }

    #[test]
    fn the_silu_follows_the_rescale_with_tracts_kernel_or_ours() {
        let (acc, bias, scale) = accumulators();
        let want = reference(&acc, &bias, &scale, true);
        for own in [false, true] {
            let got = values::<f32>(&run(activation(&bias, &scale, true, own, None), &acc));
            let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f32::max);
            assert!(worst < 1e-4, "own SiLU {own}: {worst}");
        }
    }

    /// With the next layer's quantize absorbed: int8 values one step from
    /// quantizing the reference at most, and most of them equal.
    #[test]
    fn the_quantized_output_is_the_reference_quantized_within_one_step() {
        let (acc, bias, scale) = accumulators();
        let (q_scale, zero_point) = (1.0 / 0.05, -3);
        let mut want = vec![0i8; acc.len()];
        quantize(&reference(&acc, &bias, &scale, true), &mut want, q_scale, zero_point);
        for own in [false, true] {
            let q = Quantize { scale: q_scale, zero_point, out_dt: i8::datum_type() };
            let got = values::<i8>(&run(activation(&bias, &scale, true, own, Some(q)), &acc));
            let steps: Vec<i32> = got.iter().zip(&want).map(|(g, w)| (*g as i32 - *w as i32).abs()).collect();
            assert!(steps.iter().all(|s| *s <= 1), "own SiLU {own}: a value two steps off");
            let equal = steps.iter().filter(|s| **s == 0).count();
            assert!(equal * 100 >= got.len() * 99, "own SiLU {own}: only {equal} of {} equal", got.len());
            assert!(want.iter().any(|v| *v > 50) && want.iter().any(|v| *v < -2), "the values span the range");
        }
    }

    /// Split among a 4-thread pool (as with --matmul-threads 4), the rows
    /// land where one thread puts them: 2 x 5 planes, so chunks start at
    /// rows whose channel is not 0, bit for bit, f32 and int8, either SiLU.
    #[test]
    fn split_among_threads_the_output_is_the_same_bit_for_bit() {
        use tract_linalg::multithread::{Executor, current_threading_element_threshold, multithread_tract_scope};
        let acc = random_accumulators((2, 5, 40, 41), 0x2545_f491);
        assert!(acc.len() * WORK_PER_ELEMENT >= current_threading_element_threshold(), "large enough to split");
        let (bias, scale) = ([5, -7, 3_000, 0, 12], [0.001, 0.0005, 0.0002, 0.002, 0.0011]);
        for own in [false, true] {
            for q in [None, Some(Quantize { scale: 20.0, zero_point: -3, out_dt: i8::datum_type() })] {
                let op = || activation(&bias, &scale, true, own, q.clone());
                let one = run(op(), &acc);
                let four = multithread_tract_scope(Executor::multithread(4), || run(op(), &acc));
                assert_eq!(one, four, "own SiLU {own}, quantized {}", q.is_some());
            }
        }
    }
}
