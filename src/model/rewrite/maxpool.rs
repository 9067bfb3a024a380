//! A separable max pool for YOLOv8's SPPF block.
//!
//! SPPF runs three 5x5, stride-1 max pools in a row. tract's `OptMaxPool`
//! visits the 25 taps of every output one by one: about 100 instructions
//! per output on a Cortex-A76, 0.015 G per inference at 640 for less than
//! a tenth of a million outputs (BENCHMARKS.md). A max over a rectangle is
//! a max over rows of maxes over columns, and both passes are plain loops
//! over contiguous lanes the compiler vectorises: [`replace_max_pools`]
//! swaps tract's op for [`MaxPool`], which gives the same values.

use anyhow::Result;
use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::OptMaxPool;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Replaces the 2-D, stride-1, undilated `OptMaxPool` nodes of an optimised
/// model (channels before the spatial axes, f32 or i8, no index output)
/// with [`MaxPool`]; returns how many were replaced.
pub fn replace_max_pools(model: &mut TypedModel) -> Result<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pool) = node.op_as::<OptMaxPool>() else { continue };
        let spec = &pool.pool_spec;
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = fact.shape.as_concrete() else { continue };
        let dt = fact.datum_type.unquantized();
        if pool.with_index_outputs.is_some()
            || spec.rank() != 2
            || spec.strides().iter().any(|s| *s != 1)
            || spec.dilations().iter().any(|d| *d != 1)
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || (dt != f32::datum_type() && dt != i8::datum_type())
        {
            continue;
        }
        let [h, w] = [shape[shape.len() - 2], shape[shape.len() - 1]];
        let padding = spec.computed_padding(&[h, w]);
        let op = MaxPool {
            input: [h, w],
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            before: [padding[0].pad_before, padding[1].pad_before],
            output: [padding[0].convoluted, padding[1].convoluted],
        };
        model.node_mut(id).op = Box::new(op);
        replaced += 1;
    }
    Ok(replaced)
}

/// Max pool with stride 1 over the last two axes; every other axis (batch,
/// channel) is a separate plane. Taps in the padding are left out, as in
/// tract's op (a plane that is all padding would give the type's minimum).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool {
    /// The planned input's spatial size.
    input: [usize; 2],
    kernel: [usize; 2],
    /// Padding before each spatial axis (the padding after follows from
    /// the output size).
    before: [usize; 2],
    output: [usize; 2],
}

/// The element types the pool handles, with the minimum tract's op starts from.
trait Lane: Datum + Copy + PartialOrd {
    const MIN: Self;
}

impl Lane for f32 {
    const MIN: f32 = f32::MIN;
}

impl Lane for i8 {
    const MIN: i8 = i8::MIN;
}

/// `a` if it is not less than `b`: tract's choice between equal values,
/// and a select the compiler vectorises.
#[inline(always)]
fn max<T: Lane>(a: T, b: T) -> T {
    if a < b { b } else { a }
}

impl MaxPool {
    /// One plane: `input` is h x w, `out` oh x ow; `wide` and `rows` are scratch.
    fn plane<T: Lane>(&self, input: &[T], [h, w]: [usize; 2], out: &mut [T], wide: &mut [T], rows: &mut [T]) {
        let ([kh, kw], [top, left], [_, ow]) = (self.kernel, self.before, self.output);
        // Columns: rows[y][x] = max of input[y][x - left .. x - left + kw],
        // through a copy of the row with its padding.
        for (line, r) in input.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
            wide[left..left + w].copy_from_slice(line);
            r.copy_from_slice(&wide[..ow]);
            for j in 1..kw {
                for (o, v) in r.iter_mut().zip(&wide[j..j + ow]) {
                    *o = max(*o, *v);
                }
            }
        }
        // Rows: out[y] = max of rows[y - top .. y - top + kh] that exist.
        for (y, o) in out.chunks_exact_mut(ow).enumerate() {
            let first = y.saturating_sub(top);
            let end = (y + kh).saturating_sub(top).min(h);
            if first >= end {
                o.fill(T::MIN);
                continue;
            }
            o.copy_from_slice(&rows[first * ow..][..ow]);
            for r in rows[(first + 1) * ow..end * ow].chunks_exact(ow) {
                for (o, v) in o.iter_mut().zip(r) {
                    *o = max(*o, *v);
                }
            }
        }
    }

    fn eval_t<T: Lane>(&self, input: &Tensor) -> TractResult<Tensor> {
        let shape = input.shape();
        let [h, w] = [shape[shape.len() - 2], shape[shape.len() - 1]];
        let [oh, ow] = self.output;
        let mut out_shape: TVec<usize> = shape.into();
        let rank = out_shape.len();
        out_shape[rank - 2..].copy_from_slice(&[oh, ow]);
        let plain = input.try_as_plain_ram()?;
        let xs = plain.as_slice::<T>()?;
        // SAFETY: every element is written below (each plane covers its output).
        let mut output = unsafe { Tensor::uninitialized_dt(input.datum_type(), &out_shape)? };
        let mut out_plain = output.try_as_plain_ram_mut()?;
        let ys = out_plain.as_slice_mut::<T>()?;
        if h * w > 0 && oh * ow > 0 {
            // Planes, split among tract's pool with --matmul-threads > 1:
            // each run of planes has its own scratch rows.
            let work = xs.len() * self.kernel[0].max(self.kernel[1]);
            par_chunks_mut(ys, oh * ow, work, |first, ys| {
                // The padded row reaches the last tap of the last output.
                let mut wide = vec![T::MIN; (self.before[1] + w).max(ow + self.kernel[1] - 1)];
                let mut rows = vec![T::MIN; h * ow];
                for (x, y) in xs[first * h * w..].chunks_exact(h * w).zip(ys.chunks_exact_mut(oh * ow)) {
                    self.plane(x, [h, w], y, &mut wide, &mut rows);
                }
                Ok(())
            })?;
        }
        Ok(output)
    }
}

impl Op for MaxPool {
    fn name(&self) -> StaticName {
        "YolodMaxPool".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let rank = input.rank();
        ensure!(rank >= 2, "YolodMaxPool: input {:?}", input.shape());
        ensure!(
            input.shape()[rank - 2..] == self.input,
            "YolodMaxPool: input {:?}, planned for {:?}",
            input.shape(),
            self.input
        );
        ensure!(input.strides() == &*Tensor::natural_strides(input.shape()), "YolodMaxPool: input is not contiguous");
        let output = if input.datum_type().unquantized() == i8::datum_type() {
            self.eval_t::<i8>(input)?
        } else {
            self.eval_t::<f32>(input)?
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        let rank = shape.len();
        shape[rank - 2] = self.output[0].into();
        shape[rank - 1] = self.output[1].into();
        Ok(tvec!(inputs[0].datum_type.fact(&*shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    /// tract's own max pool and ours, each optimised into a one-node
    /// model, on the same input.
    fn both<T: Lane>(input: Tensor, kernel: [usize; 2], before: [usize; 2], after: [usize; 2]) -> (Tensor, Tensor) {
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel[0], kernel[1]],
            padding: PaddingSpec::ExplicitOnnxPool(tvec![before[0], before[1]], tvec![after[0], after[1]], false),
            dilations: None,
            strides: None,
            input_channels: input.shape()[1],
            output_channels: input.shape()[1],
        };
        let mut model = TypedModel::default();
        let source = model.add_source("input", T::datum_type().fact(input.shape())).unwrap();
        let pool =
            model.wire_node("pool", tract_onnx::tract_core::ops::cnn::MaxPool::new(spec, None), &[source]).unwrap();
        model.select_output_outlets(&pool).unwrap();
        let theirs = model.into_optimized().unwrap();
        assert!(theirs.nodes().iter().any(|n| n.op_is::<OptMaxPool>()), "tract's plan has its OptMaxPool");
        let mut ours = theirs.clone();
        assert_eq!(replace_max_pools(&mut ours).unwrap(), 1);
        let run = |m: TypedModel| {
            m.into_runnable().unwrap().run(tvec![input.clone().into_tvalue()]).unwrap().remove(0).into_tensor()
        };
        (run(ours), run(theirs))
    }

    #[test]
    fn gives_tracts_values_for_any_kernel_and_padding() {
        let cases = [
            ([5, 5], [2, 2], [2, 2], [1, 3, 20, 20]),
            ([5, 5], [2, 2], [2, 2], [1, 2, 3, 4]),
            ([3, 2], [0, 1], [2, 0], [2, 3, 7, 5]),
            ([1, 1], [0, 0], [0, 0], [1, 1, 4, 4]),
            ([4, 3], [3, 2], [3, 2], [1, 2, 1, 1]),
        ];
        for (i, (kernel, before, after, shape)) in cases.into_iter().enumerate() {
            let len: usize = shape.iter().product();
            let floats: Vec<f32> = (0..len).map(|j| ((j * 7919 + i * 31) % 101) as f32 - 50.0).collect();
            let (ours, theirs) = both::<f32>(Tensor::from_shape(&shape, &floats).unwrap(), kernel, before, after);
            assert_eq!(ours, theirs, "f32 case {i}");
            let bytes: Vec<i8> = floats.iter().map(|f| (*f * 2.5) as i8).collect();
            let (ours, theirs) = both::<i8>(Tensor::from_shape(&shape, &bytes).unwrap(), kernel, before, after);
            assert_eq!(ours, theirs, "i8 case {i}");
        }
    }

    /// Split among a 4-thread pool (as with --matmul-threads 4), each run
    /// of planes gets its own scratch rows: the values stay tract's.
    #[test]
    fn split_among_threads_it_gives_the_same_values() {
        use tract_linalg::multithread::{Executor, current_threading_element_threshold, multithread_tract_scope};
        let shape = [2, 7, 30, 31];
        let len: usize = shape.iter().product();
        assert!(len * 5 >= current_threading_element_threshold(), "large enough to split");
        let bytes: Vec<i8> = (0..len).map(|j| ((j * 7919) % 251) as i8).collect();
        let input = Tensor::from_shape(&shape, &bytes).unwrap();
        let (ours, theirs) =
            multithread_tract_scope(Executor::multithread(4), || both::<i8>(input, [5, 5], [2, 2], [2, 2]));
        assert_eq!(ours, theirs);
    }
}
