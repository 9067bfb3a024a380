use std::ops::Range;

use super::layout::MIN_SPLIT_COLUMNS;
use super::*;
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_onnx::tract_core::ops::cnn::PaddingSpec;

/// A small deterministic generator (no dependency): xorshift.
fn bytes(n: usize, mut seed: u64) -> Vec<i8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as i8
        })
        .collect()
}

/// The patch matrix (k x n, row-major) by definition, one element at a time.
fn naive(
    image: &[i8],
    [c, h, w]: [usize; 3],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
    fill: i8,
) -> (Vec<i8>, usize, usize) {
    let oh = (h + 2 * pad[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0] + 1;
    let ow = (w + 2 * pad[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1] + 1;
    let (k, n) = (c * kernel[0] * kernel[1], oh * ow);
    let mut m = vec![0i8; k * n];
    for ci in 0..c {
        for ky in 0..kernel[0] {
            for kx in 0..kernel[1] {
                let row = (ci * kernel[0] + ky) * kernel[1] + kx;
                for yo in 0..oh {
                    for xo in 0..ow {
                        let y = (yo * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                        let x = (xo * stride[1] + kx * dilation[1]) as isize - pad[1] as isize;
                        let inside = y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w;
                        m[row * n + yo * ow + xo] =
                            if inside { image[(ci * h + y as usize) * w + x as usize] } else { fill };
                    }
                }
            }
        }
    }
    (m, k, n)
}

struct Case {
    chw: [usize; 3],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
}

const CASES: &[Case] = &[
    // yolov8's two 3x3 shapes: stride 1 pad 1, stride 2 pad 1 (odd and even sizes).
    Case { chw: [5, 9, 11], kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pad: [1, 1] },
    Case { chw: [3, 10, 7], kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pad: [1, 1] },
    Case { chw: [2, 6, 6], kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pad: [0, 0] },
    Case { chw: [4, 8, 9], kernel: [3, 2], stride: [1, 2], dilation: [2, 1], pad: [2, 0] },
    Case { chw: [1, 3, 3], kernel: [5, 5], stride: [1, 1], dilation: [1, 1], pad: [2, 2] },
];

fn patches(case: &Case, layout: Layout, format: Box<dyn MMMInputFormat>, k: usize) -> Patches {
    let pool_spec = PoolSpec {
        data_format: DataFormat::NCHW,
        kernel_shape: case.kernel.into_iter().collect(),
        padding: PaddingSpec::Explicit(case.pad.into_iter().collect(), case.pad.into_iter().collect()),
        dilations: Some(case.dilation.into_iter().collect()),
        strides: Some(case.stride.into_iter().collect()),
        input_channels: case.chw[0],
        output_channels: 8,
    };
    let [c, h, w] = case.chw;
    Patches { pool_spec, layout, k, format, input_shape: [1, c, h, w] }
}

/// Runs the op on one image; the packed bytes.
fn run(op: &Patches, image: &[i8], fill: i8) -> Vec<i8> {
    let [_, c, h, w] = op.input_shape;
    let input = Tensor::from_shape(&[1, c, h, w], image).unwrap();
    let out =
        op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue(), tensor0(fill as i32).into_tvalue())).unwrap();
    let storage = out[0].try_storage_as::<PackedMatrixStorage>().unwrap();
    let packed = storage.value().downcast_ref::<EagerPackedInput>().unwrap();
    packed.packed.as_bytes().iter().map(|b| *b as i8).collect()
}

/// What tract's own K4 packer makes of the k x n matrix.
fn tracts_k4(format: &PackedI8K4, matrix: &[i8], k: usize, n: usize) -> Vec<i8> {
    let packed = format.pack_view(&Tensor::from_shape(&[k, n], matrix).unwrap().view(), 0, 1).unwrap();
    packed.downcast_ref::<EagerPackedInput>().unwrap().packed.as_bytes().iter().map(|b| *b as i8).collect()
}

#[test]
fn k4_panels_match_tracts_own_packer_on_the_patch_matrix() {
    for (i, case) in CASES.iter().enumerate() {
        let [c, h, w] = case.chw;
        let image = bytes(c * h * w, 7 + i as u64);
        let (matrix, k, n) = naive(&image, case.chw, case.kernel, case.stride, case.dilation, case.pad, -3);
        for r in [4, 8, 16] {
            let format = PackedI8K4::new(r);
            let expected = tracts_k4(&format, &matrix, k, n);
            let layout = Layout::K4 { r, panel_len: format.single_panel_len(k), align: format.alignment() };
            let got = run(&patches(case, layout, Box::new(format), k), &image, -3);
            assert_eq!(got, expected, "case {i}, r {r}");
        }
    }
}

#[test]
fn k_major_panels_hold_the_patch_matrix_column_by_column() {
    for (i, case) in CASES.iter().enumerate() {
        let [c, h, w] = case.chw;
        let image = bytes(c * h * w, 11 + i as u64);
        let (matrix, k, n) = naive(&image, case.chw, case.kernel, case.stride, case.dilation, case.pad, 5);
        for r in [4, 8] {
            let format = PackedFormat::new(i8::datum_type(), r, 16);
            let panel_len = format.single_panel_len(k);
            let got =
                run(&patches(case, Layout::KMajor { r, panel_len, align: 16 }, Box::new(format.clone()), k), &image, 5);
            assert_eq!(got.len(), n.div_ceil(r) * panel_len);
            for row in 0..k {
                for col in 0..n {
                    let at = (col / r) * panel_len + row * r + col % r;
                    assert_eq!(got[at], matrix[row * n + col], "case {i}, r {r}, k {row}, n {col}");
                }
            }
            // What tract's packer makes of the same matrix, where it writes.
            let expected = format.pack_tensor(&Tensor::from_shape(&[k, n], &matrix).unwrap(), 0, 1).unwrap();
            let expected = expected.downcast_ref::<EagerPackedInput>().unwrap().packed.as_bytes();
            for p in 0..n.div_ceil(r) {
                let width = r.min(n - p * r);
                for row in 0..k {
                    let at = p * panel_len + row * r;
                    let theirs: Vec<i8> = expected[at..at + width].iter().map(|b| *b as i8).collect();
                    assert_eq!(&got[at..at + width], &theirs[..], "case {i}, r {r}, panel {p}, k {row}");
                }
            }
        }
    }
}

/// Split among a 4-thread pool (as with --matmul-threads 4), each run of
/// panels starts and ends inside output rows, at stride 1 and 2: K4 panels
/// are still tract's own packer's, k-major ones what one thread lays.
#[test]
fn split_among_threads_the_panels_are_the_same() {
    use tract_linalg::multithread::{Executor, current_threading_element_threshold, multithread_tract_scope};
    let four = || Executor::multithread(4);
    let cases = [
        Case { chw: [8, 40, 37], kernel: [3, 3], stride: [1, 1], dilation: [1, 1], pad: [1, 1] },
        Case { chw: [4, 81, 79], kernel: [3, 3], stride: [2, 2], dilation: [1, 1], pad: [1, 1] },
    ];
    for (i, case) in cases.iter().enumerate() {
        let [c, h, w] = case.chw;
        let image = bytes(c * h * w, 23 + i as u64);
        let (matrix, k, n) = naive(&image, case.chw, case.kernel, case.stride, case.dilation, case.pad, -3);
        assert!(k * n >= current_threading_element_threshold(), "case {i} is large enough to split");
        assert!(n >= MIN_SPLIT_COLUMNS, "case {i} is wide enough to split");
        for r in [8, 16] {
            let format = PackedI8K4::new(r);
            let expected = tracts_k4(&format, &matrix, k, n);
            let layout = Layout::K4 { r, panel_len: format.single_panel_len(k), align: format.alignment() };
            let op = patches(case, layout, Box::new(format), k);
            let got = multithread_tract_scope(four(), || run(&op, &image, -3));
            assert_eq!(got, expected, "case {i}, K4 r {r}");
        }
        let format = PackedFormat::new(i8::datum_type(), 8, 16);
        let layout = Layout::KMajor { r: 8, panel_len: format.single_panel_len(k), align: 16 };
        let op = patches(case, layout, Box::new(format), k);
        let one = run(&op, &image, -3);
        assert_eq!(multithread_tract_scope(four(), || run(&op, &image, -3)), one, "case {i}, k-major");
    }
}

/// `Layout::lay` writes every byte of its panels, whatever was there: the
/// blobs it fills are not zeroed first.
#[test]
fn lay_writes_every_byte_of_a_dirty_buffer() {
    for (k, n) in [(27, 37), (8, 16), (5, 3), (12, 40)] {
        let matrix = bytes(k * n, (k * n) as u64);
        let formats: Vec<Box<dyn MMMInputFormat>> = vec![
            Box::new(PackedI8K4::new(8)),
            Box::new(PackedI8K4::new(16)),
            Box::new(PackedFormat::new(i8::datum_type(), 8, 16)),
        ];
        for format in formats {
            let layout = Layout::of(&*format, k).unwrap();
            let (r, panel_len, _) = layout.panels();
            let expected =
                format.prepare_one_view(&Tensor::from_shape(&[k, n], &matrix).unwrap().view(), 0, 1).unwrap();
            let mut expected = expected.downcast_ref::<EagerPackedInput>().unwrap().packed.as_bytes().to_vec();
            if let Layout::KMajor { .. } = layout {
                expected = super::k_major_as_laid(&expected, k, n, r, panel_len);
            }
            let expected: Vec<i8> = expected.iter().map(|b| *b as i8).collect();
            let mut packed = vec![0x5a_i8; n.div_ceil(r) * panel_len];
            let rows = |cols: Range<usize>| {
                let matrix = &matrix;
                move |row: usize, out: &mut [i8]| out.copy_from_slice(&matrix[row * n + cols.start..][..cols.len()])
            };
            layout.lay(k, n, &mut packed, rows).unwrap();
            assert_eq!(packed, expected[..packed.len()], "k {k} n {n} {format:?}");
        }
    }
}
