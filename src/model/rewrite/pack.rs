//! A faster int8 activation pack for tract's 1x1 convolutions.
//!
//! A 1x1 integer convolution needs no im2col: tract packs its input for the
//! matmul with `OptMatMulPack`, one panel set per image row. For
//! `PackedI8K4` (the dot-product kernels) its packer moves one byte at a
//! time through strided pointers: 0.063 G of 1.01 G instructions per int8
//! inference at 640 on a Cortex-A76 (BENCHMARKS.md). [`replace_int8_pack`]
//! swaps those nodes for [`Pack`], which lays the same bytes from whole rows
//! with the interleave of [`super::patches`].

use std::sync::Arc;

use anyhow::Result;
use tract_linalg::mmm::{EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::matmul::pack::{DynPackedExoticFact, OptMatMulPack};

use super::patches::Layout;

/// Replaces the int8 `OptMatMulPack` nodes of an optimised model with
/// [`Pack`]; returns how many were replaced.
pub fn replace_int8_pack(model: &mut TypedModel) -> Result<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(op) = node.op_as::<OptMatMulPack>() else { continue };
        let input = model.outlet_fact(node.inputs[0])?.clone();
        let output = model.outlet_fact(OutletId::new(id, 0))?.clone();
        let mapping = op.axes_mapping(&[&input], &[&output])?;
        let axis = |repr| mapping.axis(repr).ok().and_then(|a| a.inputs[0].first().copied());
        if let (Some(k_axis), Some(mn_axis)) = (axis('K'), axis('M'))
            && let Some(pack) = Pack::covering(&input, &output, k_axis, mn_axis)
        {
            model.node_mut(id).op = Box::new(pack);
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// Packs every (k x mn) matrix of an int8 tensor, `mn` its last axis, for
/// tract's matmul: one packed value per index of the other axes, in order,
/// as `OptMatMulPack` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    format: Box<dyn MMMInputFormat>,
    layout: Layout,
    k_axis: usize,
    /// Input shape the plan was optimised for.
    shape: TVec<usize>,
    /// The shape it packs that (contiguous) input as: `shape`, or with the
    /// axes between k and mn merged ([`Pack::merged`]).
    view: TVec<usize>,
}

impl Pack {
    fn covering(input: &TypedFact, output: &TypedFact, k_axis: usize, mn_axis: usize) -> Option<Pack> {
        let packed = output.exotic_fact()?.downcast_ref::<DynPackedExoticFact>()?;
        let shape: TVec<usize> = input.shape.as_concrete()?.into();
        if packed.packers.len() != 1
            || input.datum_type.unquantized() != i8::datum_type()
            || mn_axis + 1 != shape.len()
            || k_axis >= mn_axis
        {
            return None;
        }
        let format = packed.packers[0].clone();
        let layout = Layout::of(&*format, shape[k_axis])?;
        Some(Pack { format, layout, k_axis, view: shape.clone(), shape })
    }
}

impl Pack {
    /// This pack with the axes between k and mn merged into mn: the whole
    /// map as one k x (rows x columns) matrix, not one per row; None when
    /// there is no such axis.
    pub(super) fn merged(&self) -> Option<Pack> {
        let rows: usize = self.shape[self.k_axis + 1..self.shape.len() - 1].iter().product();
        if self.shape.len() < self.k_axis + 3 || rows < 2 {
            return None;
        }
        let mut shape: TVec<usize> = self.shape[..=self.k_axis].into();
        shape.push(rows * self.shape[self.shape.len() - 1]);
        Some(Pack { view: shape, ..self.clone() })
    }

    /// The batch shape of the output: the axes other than k and mn.
    pub(super) fn batch_shape(&self) -> TVec<usize> {
        let mut batch = self.view.clone();
        batch.pop();
        batch.remove(self.k_axis);
        batch
    }
}

impl Op for Pack {
    fn name(&self) -> StaticName {
        "YolodPack".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Pack {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        ensure!(input.shape() == &*self.shape, "YolodPack: input {:?}, planned for {:?}", input.shape(), self.shape);
        ensure!(input.datum_type().unquantized() == i8::datum_type(), "YolodPack: {:?} input", input.datum_type());
        ensure!(input.strides() == &*Tensor::natural_strides(input.shape()), "YolodPack: input is not contiguous");
        // SAFETY: the datum type is i8 (possibly with quantisation parameters).
        let data = unsafe { input.as_slice_unchecked::<i8>() };
        let shape = &self.view;
        let (k, mn) = (shape[self.k_axis], shape[shape.len() - 1]);
        let (r, panel_len, align) = self.layout.panels();
        // Axes before k (outer), between k and mn (inner): one matrix per (outer, inner).
        let outer: usize = shape[..self.k_axis].iter().product();
        let inner: usize = shape[self.k_axis + 1..shape.len() - 1].iter().product();
        let k_stride = inner * mn;
        let mut values: TVec<Box<dyn MMMInputValue>> = TVec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let base = o * k * k_stride + i * mn;
                // SAFETY: `lay` writes every byte.
                let mut blob = unsafe { Blob::new_for_size_and_align(mn.div_ceil(r) * panel_len, align) };
                let bytes = blob.as_bytes_mut();
                if mn > 0 {
                    // SAFETY: i8 and u8 have the same size and alignment.
                    let packed = unsafe { &mut *(bytes as *mut [u8] as *mut [i8]) };
                    self.layout.lay(k, mn, packed, |cols| {
                        move |kk, row: &mut [i8]| {
                            row.copy_from_slice(&data[base + kk * k_stride + cols.start..][..cols.len()])
                        }
                    })?;
                }
                values.push(Box::new(EagerPackedInput {
                    fact: PackedExoticFact { format: self.format.clone(), k, mn: mn.to_dim() },
                    packed: Arc::new(blob),
                    panel_bytes: panel_len,
                    mn,
                }));
            }
        }
        let batch = self.batch_shape();
        Ok(tvec!(PackedMatrixStorage::new_batched(&batch, values).into_tensor(input.datum_type()).into_tvalue()))
    }
}

impl TypedOp for Pack {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (k, mn) = (self.view[self.k_axis], self.view[self.view.len() - 1]);
        let fact = DynPackedExoticFact { k: k.to_dim(), mn: mn.to_dim(), packers: vec![self.format.clone()] };
        Ok(tvec!(inputs[0].datum_type.fact(&*self.batch_shape()).with_exotic_fact(fact)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::pack::{PackedFormat, PackedI8K4};

    /// The packed values of `out` (a batch of `EagerPackedInput`) as bytes.
    fn blobs(out: &Tensor) -> Vec<(Vec<u8>, usize, usize)> {
        let storage = out.try_storage_as::<PackedMatrixStorage>().unwrap();
        (0..out.len())
            .map(|i| {
                let v = storage.value_at_flat(i).downcast_ref::<EagerPackedInput>().unwrap();
                (v.packed.as_bytes().to_vec(), v.panel_bytes, v.mn)
            })
            .collect()
    }

    #[test]
    fn packs_the_same_bytes_as_tracts_own_packer() {
        let formats: Vec<Box<dyn MMMInputFormat>> = vec![
            Box::new(PackedI8K4::new(4)),
            Box::new(PackedI8K4::new(8)),
            Box::new(PackedI8K4::new(16)),
            Box::new(PackedFormat::new(i8::datum_type(), 8, 16)),
        ];
        // (shape, k axis): NCHW and CHW activations, k not a multiple of 4,
        // rows shorter and longer than a panel.
        let cases: &[(&[usize], usize)] = &[(&[1, 7, 3, 10], 1), (&[6, 5, 21], 0), (&[2, 4, 3], 1), (&[1, 9, 2, 3], 1)];
        for (shape, k_axis) in cases {
            let n: usize = shape.iter().product();
            let data: Vec<i8> = (0..n).map(|i| (i * 37 % 251) as i8).collect();
            let input = Tensor::from_shape(shape, &data).unwrap();
            let mn_axis = shape.len() - 1;
            for format in &formats {
                let fact = i8::datum_type().fact(*shape);
                let packed = DynPackedExoticFact {
                    k: shape[*k_axis].to_dim(),
                    mn: shape[mn_axis].to_dim(),
                    packers: vec![format.clone()],
                };
                let mut out_shape: TVec<usize> = shape.iter().copied().collect();
                out_shape.remove(mn_axis);
                out_shape.remove(*k_axis);
                let output = i8::datum_type().fact(&*out_shape).with_exotic_fact(packed);
                let ours = Pack::covering(&fact, &output, *k_axis, mn_axis).unwrap();
                let got = ours.eval(&EvalContext::out_of_plan(), tvec!(input.clone().into_tvalue())).unwrap().remove(0);
                assert_eq!(got.shape(), &*out_shape);
                assert_eq!(ours.output_facts(&[&fact]).unwrap()[0].shape.as_concrete(), Some(&*out_shape));
                // tract's packer on each (k x mn) matrix, in the order OptMatMulPack takes them.
                let (k, mn) = (shape[*k_axis], shape[mn_axis]);
                let outer: usize = shape[..*k_axis].iter().product();
                let inner: usize = shape[*k_axis + 1..mn_axis].iter().product();
                let mut expected = vec![];
                for o in 0..outer {
                    for i in 0..inner {
                        let matrix: Vec<i8> = (0..k)
                            .flat_map(|kk| (0..mn).map(move |m| ((o * k + kk) * inner + i) * mn + m))
                            .map(|at| data[at])
                            .collect();
                        let value = format
                            .prepare_one_view(&Tensor::from_shape(&[k, mn], &matrix).unwrap().view(), 0, 1)
                            .unwrap();
                        let value = value.downcast_ref::<EagerPackedInput>().unwrap();
                        let mut bytes = value.packed.as_bytes().to_vec();
                        if let Layout::KMajor { r, panel_len, .. } = ours.layout {
                            bytes = crate::model::rewrite::patches::k_major_as_laid(&bytes, k, mn, r, panel_len);
                        }
                        expected.push((bytes, value.panel_bytes, value.mn));
                    }
                }
                assert_eq!(blobs(&got), expected, "{shape:?} {format:?}");
            }
        }
    }
}
