//! An int8 convolution's matrix product and its activation in one pass.
//!
//! After passes 1-4 a convolution of the int8 model runs as tract's matmul
//! (its SDOT kernel on a dot-product core), which writes i32 accumulators,
//! then our [`Activation`], which reads them back. At 320 the matmul's
//! driver around its kernel (per-tile set-up, the zero-point row op, the
//! store) costs about a fifth of the kernel's instructions (profile in
//! BENCHMARKS.md). [`fuse_convolutions`] replaces each `OptMatMul
//! [-> IntoShape] -> Activation` chain whose activation runs our SiLU (to
//! int8 or f32) or no SiLU (the head's last layers) with one [`Conv`]:
//! 8 x 8 tiles by the same SDOT loop, the zero-point and bias terms folded
//! into the accumulators' start, the activation applied in registers and
//! 8 values stored per row.
//! The values are the chain's, bit for bit: the accumulators are exact
//! integers and the activation runs the same operations in the same order.

use std::sync::Arc;

use anyhow::Result;
use tract_linalg::BinOp;
use tract_linalg::mmm::{EagerPackedInput, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedI8K4;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::IntoShape;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::ops::matmul::pack::DynPackedExoticFact;

use super::activation::Activation;
use super::pack::Pack;

#[cfg(test)]
mod tests;
mod tiles;

/// Replaces each `OptMatMul [-> IntoShape] -> Activation` chain that
/// [`Conv`] covers; returns how many. Only where the CPU has the dot
/// product and tract packed for its 8 x 8 SDOT kernel, unless `anywhere`
/// (tests: the portable tiles, on any packing).
pub fn fuse_convolutions(model: &mut TypedModel, anywhere: bool) -> Result<usize> {
    if !anywhere && !has_dot_product() {
        return Ok(0);
    }
    let mut fused = 0;
    for id in 0..model.nodes().len() {
        let Some((op, input)) = chain_into(model, id, anywhere)? else { continue };
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, input)?;
        let out = patch.wire_node(format!("{}.conv", model.node(id).name), op, &[tap])?;
        patch.shunt_outside(model, OutletId::new(id, 0), out[0])?;
        patch.apply(model)?;
        fused += 1;
    }
    // tract packs a 1x1 convolution's input one output row at a time, and
    // each row ends in a panel of 8 columns: at 320, a 10-pixel row fills
    // 10 of 16 columns and a 20-pixel one 20 of 24, and the tiles compute
    // the empty ones too. Where every reader of such a pack is a [`Conv`],
    // the map is packed as one matrix instead.
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pack) = node.op_as::<Pack>() else { continue };
        let Some(merged) = pack.merged() else { continue };
        let readers: Vec<usize> = node.outputs[0].successors.iter().map(|s| s.node).collect();
        if readers.is_empty() || model.outputs.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let rows = pack.batch_shape();
        let convs: Option<Vec<Conv>> =
            readers.iter().map(|r| model.node(*r).op_as::<Conv>().and_then(|c| c.unbatched(&rows))).collect();
        let Some(convs) = convs else { continue };
        let fact = merged.output_facts(&[model.outlet_fact(node.inputs[0])?])?.remove(0);
        let node = model.node_mut(id);
        node.op = Box::new(merged);
        node.outputs[0].fact = fact;
        for (reader, conv) in readers.into_iter().zip(convs) {
            model.node_mut(reader).op = Box::new(conv);
        }
    }
    Ok(fused)
}

/// Whether this CPU runs SDOT (tract's dot-product kernels, and ours).
pub(super) fn has_dot_product() -> bool {
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("dotprod");
    #[cfg(not(target_arch = "aarch64"))]
    return false;
}

/// The [`Conv`] for the chain that ends in activation node `id`, and the
/// packed input it reads, when the chain has the shape [`Conv`] covers.
///
/// tract lays a convolution out two ways: through im2col, C = W X with
/// the weights as A (rows are channels); and a 1x1 convolution one output
/// row at a time, C = X W batched over the rows, the weights as B
/// (columns are channels). Either way C's channel axis comes before its
/// batch axes and its positions are the last axis, so each channel's
/// outputs are one contiguous plane, as the activation's are.
fn chain_into(model: &TypedModel, id: usize, anywhere: bool) -> Result<Option<(Conv, OutletId)>> {
    let node = model.node(id);
    let Some(act) = node.op_as::<Activation>() else { return Ok(None) };
    let output = match (&act.quantize, act.silu, act.own_silu) {
        (Some(q), true, true) => Output::I8 { q_scale: q.scale, zero_point: q.zero_point, dt: q.out_dt },
        (None, true, true) => Output::Silu,
        (None, false, _) => Output::Rescale,
        _ => return Ok(None),
    };
    // Through a reshape (it moves no data) to the matmul.
    let mut from = node.inputs[0];
    if model.node(from.node).op_is::<IntoShape>() {
        if !sole_reader(model, from) {
            return Ok(None);
        }
        from = model.node(from.node).inputs[0];
    }
    let mm_node = model.node(from.node);
    let Some(mm) = mm_node.op_as::<OptMatMul>() else { return Ok(None) };
    if !sole_reader(model, from) || mm.mmm.len() != 1 {
        return Ok(None);
    }
    let [ProtoFusedSpec::AddMatMul { geo, a, b, packings }, channel_ops @ .., ProtoFusedSpec::Store(_)] =
        &mm.micro_ops[..]
    else {
        return Ok(None);
    };
    let ([(packing, None)], Some(k)) = (&packings[..], geo.k.to_usize().ok()) else { return Ok(None) };
    let (fa, fb) = &mm.mmm[0].packings()[*packing];
    let (Some(fa), Some(fb)) = (fa.downcast_ref::<PackedI8K4>(), fb.downcast_ref::<PackedI8K4>()) else {
        return Ok(None);
    };
    let (Some(m_axis), Some(n_axis)) = (mm.c_m_axis, mm.c_n_axis) else { return Ok(None) };
    // Which operand holds the weights (a constant) and which the data.
    let weights = |operand: &MatMulOperand| -> Result<Option<Arc<Tensor>>> {
        Ok(match operand {
            MatMulOperand::Input(slot) => model.outlet_fact(mm_node.inputs[*slot])?.konst.clone(),
            MatMulOperand::Const(_) => None,
        })
    };
    let (w, w_konst, data, w_format, x_format, channel_axis, position_axis, map, per_channel) =
        match (a, b, weights(a)?, weights(b)?) {
            (MatMulOperand::Const(_), MatMulOperand::Input(x), ..) | (_, MatMulOperand::Input(x), Some(_), None) => {
                (a, weights(a)?, *x, fa, fb, m_axis, n_axis, &geo.c_to_b_axis_mapping, true)
            }
            (MatMulOperand::Input(x), MatMulOperand::Const(_), ..) | (MatMulOperand::Input(x), _, None, Some(_)) => {
                (b, weights(b)?, *x, fb, fa, n_axis, m_axis, &geo.c_to_a_axis_mapping, false)
            }
            _ => return Ok(None),
        };
    if !anywhere && (w_format.r != ROWS || x_format.r != COLUMNS) {
        return Ok(None);
    }
    let w = match (w, &w_konst) {
        (MatMulOperand::Const(w), _) => &**w,
        (_, Some(t)) => match t.try_storage_as::<PackedMatrixStorage>() {
            Ok(s) if s.values().len() == 1 => s.value_at_flat(0),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    // C: [1.., channels, batch axes.., positions].
    let Some(c) = mm.c_fact.shape.as_concrete() else { return Ok(None) };
    if position_axis + 1 != c.len() || channel_axis >= position_axis || c[..channel_axis].iter().any(|d| *d != 1) {
        return Ok(None);
    }
    let (m, n) = (c[channel_axis], c[position_axis]);
    if m == 0 || n == 0 || k == 0 {
        return Ok(None);
    }
    let batch_axes: Vec<(usize, usize)> =
        (channel_axis + 1..position_axis).map(|axis| (axis, c[axis])).filter(|(_, d)| *d > 1).collect();
    let batches: usize = batch_axes.iter().map(|(_, d)| d).product();
    // The activation sees the same values: channels along its axis, each a
    // plane of all batches' positions.
    let Some(shape) = model.outlet_fact(node.inputs[0])?.shape.as_concrete().map(|s| s.to_vec()) else {
        return Ok(None);
    };
    let (before, after) = (&shape[..act.axis], shape.get(act.axis + 1..).unwrap_or(&[]));
    if before.iter().product::<usize>() != 1
        || shape.get(act.axis) != Some(&m)
        || after.iter().product::<usize>() != batches * n
    {
        return Ok(None);
    }
    let Some(w) = w.downcast_ref::<EagerPackedInput>().filter(|w| w.mn == m && w.fact.k == k) else {
        return Ok(None);
    };
    let x = mm_node.inputs[data];
    let x_fact = model.outlet_fact(x)?;
    let x_packed = x_fact.exotic_fact().and_then(|f| f.downcast_ref::<PackedExoticFact>());
    let x_dyn = x_fact.exotic_fact().and_then(|f| f.downcast_ref::<DynPackedExoticFact>());
    let fits = |fk: usize, mn: &TDim| fk == k && mn.to_usize().ok() == Some(n);
    let packed_fits = match (x_packed, x_dyn) {
        (Some(f), _) => fits(f.k, &f.mn) && f.format.downcast_ref::<PackedI8K4>() == Some(x_format),
        (_, Some(f)) => {
            f.k.to_usize().ok() == Some(k)
                && f.mn.to_usize().ok() == Some(n)
                && f.packers.iter().all(|p| p.downcast_ref::<PackedI8K4>() == Some(x_format))
        }
        _ => false,
    };
    if !packed_fits || x_fact.shape.as_concrete().is_none_or(|s| s.iter().product::<usize>() != batches) {
        return Ok(None);
    }
    // The zero-point and bias terms tract adds after its kernel, one per
    // channel, folded into the activation's bias (wrapping, as every i32
    // sum here).
    let mut bias = act.bias.clone();
    for op in channel_ops {
        let ((ProtoFusedSpec::BinPerRow(slot, op, _), true) | (ProtoFusedSpec::BinPerCol(slot, op, _), false)) =
            (op, per_channel)
        else {
            return Ok(None);
        };
        let Some(values) = model.outlet_fact(mm_node.inputs[*slot])?.konst.clone() else { return Ok(None) };
        let Ok(values) = values.try_as_plain_ram().and_then(|r| r.as_slice::<i32>().map(|r| r.to_vec())) else {
            return Ok(None);
        };
        if values.len() != m && values.len() != 1 {
            return Ok(None);
        }
        for (c, b) in bias.iter_mut().enumerate() {
            let v = values[c % values.len()];
            *b = match op {
                BinOp::Add => b.wrapping_add(v),
                BinOp::SubF => b.wrapping_sub(v),
                _ => return Ok(None),
            };
        }
    }
    let conv = Conv {
        m,
        n,
        k,
        batch_axes,
        map: map.0.to_vec(),
        rank: c.len(),
        a: Arc::new(w.packed.as_bytes().iter().map(|b| *b as i8).collect()),
        a_panel: w.panel_bytes,
        ra: w_format.r,
        rb: x_format.r,
        bias,
        scale: act.scale.clone(),
        output,
        shape: shape.into(),
        t_scale: vec![],
        q_scale: vec![],
    }
    .with_derived_scales();
    if conv.a.len() < m.div_ceil(conv.ra) * conv.a_panel || conv.a_panel < k.div_ceil(4) * 4 * conv.ra {
        return Ok(None);
    }
    Ok(Some((conv, x)))
}

/// Whether `outlet` has one reader and is not a model output.
fn sole_reader(model: &TypedModel, outlet: OutletId) -> bool {
    model.node(outlet.node).outputs[outlet.slot].successors.len() == 1 && !model.outputs.contains(&outlet)
}

/// Rows (channels) and columns (output positions) of the NEON tile: those
/// of tract's SDOT kernel, whose packing [`Conv`] reads.
const ROWS: usize = 8;
const COLUMNS: usize = 8;

/// `quantize(silu(f32(A B + bias[c]) * scale[c]))` per channel c (or the
/// SiLU alone, or the rescale alone: `Output`), as [`Activation`]
/// computes it after tract's matmul: A the weights as tract
/// packed them (K4 panels of `ra` rows), B the patches or activations as
/// passes 1 and 2 pack them (K4 panels of `rb` columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Channels, positions per batch, depth.
    m: usize,
    n: usize,
    k: usize,
    /// C's batch axes (1x1 convolutions: the output rows) with their
    /// lengths, C's rank, and how C's axes index the input's packed values
    /// (tract's `MapOutputAxisToInput`).
    batch_axes: Vec<(usize, usize)>,
    map: Vec<(usize, usize)>,
    rank: usize,
    a: Arc<Vec<i8>>,
    a_panel: usize,
    ra: usize,
    rb: usize,
    /// The activation's bias with tract's zero-point rows folded in.
    bias: Vec<i32>,
    scale: Vec<f32>,
    output: Output,
    shape: TVec<usize>,
    /// Per channel, as the activation's kernels derive them from `scale`:
    /// the SiLU's exponent scale and the int8 output's scale.
    t_scale: Vec<f32>,
    q_scale: Vec<f32>,
}

impl Eq for Conv {}

impl Conv {
    /// `t_scale` and `q_scale` from `scale`, with the same operations as
    /// `silu::silu_i8` and `silu::silu_f32`, so the same bits.
    fn with_derived_scales(self) -> Conv {
        let t_scale = self.scale.iter().map(|s| -s * std::f32::consts::LOG2_E).collect();
        let q = match self.output {
            Output::I8 { q_scale, .. } => q_scale,
            _ => 1.0,
        };
        let q_scale = self.scale.iter().map(|s| s * q).collect();
        Conv { t_scale, q_scale, ..self }
    }
}

/// What the activation makes of `f32(acc + bias[c]) * scale[c]`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    /// Its SiLU, quantized to int8 (the next layer's input).
    I8 { q_scale: f32, zero_point: i8, dt: DatumType },
    /// Its SiLU as f32 (read by a concat, an add or a max pool).
    Silu,
    /// The value itself as f32 (the head's last convolutions).
    Rescale,
}

impl Op for Conv {
    fn name(&self) -> StaticName {
        "YolodConv".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Conv {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let storage = inputs[0].try_storage_as::<PackedMatrixStorage>()?;
        let batches = self.batches();
        // Each batch's packed value, found as tract finds it.
        let mut panels = Vec::with_capacity(batches);
        for t in 0..batches {
            let flat = self.packed_index(t, storage.batch_strides());
            let value = storage.values().get(flat as usize).context("YolodConv: no packed value for a batch")?;
            let b = value.downcast_ref::<EagerPackedInput>().context("YolodConv: input not packed")?;
            ensure!(
                b.mn == self.n && b.fact.k == self.k,
                "YolodConv: input {}x{}, planned {}x{}",
                b.fact.k,
                b.mn,
                self.k,
                self.n
            );
            let bytes = b.packed.as_bytes();
            ensure!(
                b.panel_bytes >= self.k.div_ceil(4) * 4 * self.rb
                    && bytes.len() >= self.n.div_ceil(self.rb) * b.panel_bytes,
                "YolodConv: packed input too short"
            );
            // SAFETY: i8 and u8 have the same size and alignment.
            panels.push((unsafe { &*(bytes as *const [u8] as *const [i8]) }, b.panel_bytes));
        }
        // SAFETY: every element is written below (the tiles cover the tensor).
        let mut output = match self.output {
            Output::I8 { .. } => unsafe { Tensor::uninitialized_dt(i8::datum_type(), &self.shape)? },
            _ => unsafe { Tensor::uninitialized_dt(f32::datum_type(), &self.shape)? },
        };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            match self.output {
                Output::I8 { .. } => self.run(&panels, plain.as_slice_mut::<i8>()?)?,
                _ => self.run(&panels, plain.as_slice_mut::<f32>()?)?,
            }
        }
        if let Output::I8 { dt, .. } = self.output {
            // SAFETY: only the quantisation parameters change, not the layout.
            unsafe { output.set_datum_type(dt) };
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for Conv {
    fn output_facts(&self, _: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = match self.output {
            Output::I8 { dt, .. } => dt,
            _ => f32::datum_type(),
        };
        Ok(tvec!(dt.fact(&*self.shape)))
    }

    as_op!();
}

impl Conv {
    /// This convolution reading its input packed as one matrix instead of
    /// one per batch, when its batches are the packed values of a pack
    /// with batch shape `packed` in their order (the output rows, top to
    /// bottom): the columns are then the same positions.
    fn unbatched(&self, packed: &[usize]) -> Option<Conv> {
        let batches = self.batches();
        if batches < 2 || packed.iter().product::<usize>() != batches {
            return None;
        }
        let strides = Tensor::natural_strides(packed);
        if (0..batches).any(|t| self.packed_index(t, &strides) != t as isize) {
            return None;
        }
        Some(Conv { n: self.n * batches, batch_axes: vec![], map: vec![], ..self.clone() })
    }

    /// How many batches C has (1 for im2col's layout).
    fn batches(&self) -> usize {
        self.batch_axes.iter().map(|(_, d)| d).product()
    }

    /// The index among the input's packed values of batch `t` (C's batch
    /// axes in row-major order), for values laid out with `strides`: as
    /// tract's `MapOutputAxisToInput::flat_index` finds it.
    fn packed_index(&self, t: usize, strides: &[isize]) -> isize {
        let mut coords = vec![0; self.rank];
        let mut rest = t;
        for (axis, d) in self.batch_axes.iter().rev() {
            coords[*axis] = rest % d;
            rest /= d;
        }
        self.map.iter().map(|(c, i)| coords[*c] as isize * strides.get(*i).copied().unwrap_or(0)).sum()
    }
}
