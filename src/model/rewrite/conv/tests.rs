//! [`Conv`]'s tiles against the plain product and the activation's own
//! kernels, for each output, packing width and threading.

use super::*;
use tract_linalg::multithread::current_threading_panel_threshold;

/// `rows` x k values (xorshift from `seed`), and the same packed as K4
/// panels of `r` rows, with the panel length.
fn packed(rows: usize, k: usize, r: usize, seed: &mut u32) -> (Vec<i8>, Vec<i8>, usize) {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        *seed as i8
    };
    let plain: Vec<i8> = (0..rows * k).map(|_| next()).collect();
    let panel = k.div_ceil(4) * 4 * r;
    let mut panels = vec![0i8; rows.div_ceil(r) * panel];
    for i in 0..rows {
        for kk in 0..k {
            panels[i / r * panel + kk / 4 * 4 * r + 4 * (i % r) + kk % 4] = plain[i * k + kk];
        }
    }
    (plain, panels, panel)
}

fn conv(m: usize, n: usize, k: usize, a: Vec<i8>, a_panel: usize, r: usize, output: Output) -> Conv {
    Conv {
        m,
        n,
        k,
        batch_axes: vec![],
        map: vec![],
        rank: 2,
        a: Arc::new(a),
        a_panel,
        ra: r,
        rb: r,
        bias: (0..m as i32).map(|c| c * 997 - 5_000).collect(),
        scale: (0..m).map(|c| 2e-4 * (1.0 + c as f32 / 7.0)).collect(),
        output,
        shape: tvec![1, m, n],
        t_scale: vec![],
        q_scale: vec![],
    }
    .with_derived_scales()
}

/// The tiles (NEON's where they run, the portable ones elsewhere and
/// for panels of 16) against the plain product followed by the
/// activation's own kernels, row by row, for each kind of output: the
/// same values, bit for bit, with k not a multiple of 4, an odd and an
/// even number of quads, and a last panel of columns cut short.
#[test]
fn the_tiles_give_the_product_then_the_activation() {
    let mut seed = 0x1234_5677;
    let shapes = [(16, 21, 27), (8, 8, 8), (24, 100, 144), (16, 13, 4)].map(|s| (s, ROWS));
    for ((m, n, k), r) in shapes.into_iter().chain([((16, 40, 36), 16), ((8, 19, 9), 16)]) {
        let (a, a_panels, a_panel) = packed(m, k, r, &mut seed);
        let (b, b_panels, b_panel) = packed(n, k, r, &mut seed);
        let acc = |c: usize| -> Vec<i32> {
            (0..n).map(|j| (0..k).map(|kk| a[c * k + kk] as i32 * b[j * k + kk] as i32).sum()).collect()
        };
        let i8_output = Output::I8 { q_scale: 1.0 / 0.04, zero_point: -5, dt: i8::datum_type() };
        let op = conv(m, n, k, a_panels.clone(), a_panel, r, i8_output);
        let mut got = vec![0i8; m * n];
        op.run(&[(&b_panels, b_panel)], &mut got).unwrap();
        let mut want = vec![0i8; m * n];
        for c in 0..m {
            super::super::silu::silu_i8(&acc(c), op.bias[c], op.scale[c], 1.0 / 0.04, -5, &mut want[c * n..][..n]);
        }
        assert_eq!(got, want, "int8, {m}x{k} by {k}x{n}, panels of {r}");
        assert!(want.iter().any(|v| *v > 20) && want.iter().any(|v| *v < -5), "the values span the range");
        for output in [Output::Silu, Output::Rescale] {
            let op = conv(m, n, k, a_panels.clone(), a_panel, r, output);
            let mut got = vec![0f32; m * n];
            op.run(&[(&b_panels, b_panel)], &mut got).unwrap();
            let mut want = vec![0f32; m * n];
            for c in 0..m {
                let (bias, scale, want) = (op.bias[c], op.scale[c], &mut want[c * n..][..n]);
                if output == Output::Silu {
                    super::super::silu::silu_f32(&acc(c), bias, scale, want);
                } else {
                    for (w, a) in want.iter_mut().zip(acc(c)) {
                        *w = a.wrapping_add(bias) as f32 * scale;
                    }
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{output:?}, {m}x{k} by {k}x{n}, panels of {r}");
        }
    }
}

/// Batched as tract lays a 1x1 convolution out (one packed input per
/// output row) and split among a 4-thread pool (as with
/// --matmul-threads 4): each batch's columns land in its part of every
/// channel's plane, as one batch alone puts them, bit for bit.
#[test]
fn batches_split_among_threads_land_where_one_puts_them() {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    let mut seed = 0x2545_f491;
    let (m, n, k, rows) = (16, 36, 40, 8);
    let (_, a_panels, a_panel) = packed(m, k, ROWS, &mut seed);
    let inputs: Vec<(Vec<i8>, usize)> = (0..rows)
        .map(|_| {
            let (_, panels, len) = packed(n, k, COLUMNS, &mut seed);
            (panels, len)
        })
        .collect();
    let batches: Vec<(&[i8], usize)> = inputs.iter().map(|(p, l)| (&p[..], *l)).collect();
    let output = Output::I8 { q_scale: 1.0 / 0.04, zero_point: -5, dt: i8::datum_type() };
    let op = conv(m, n, k, a_panels, a_panel, ROWS, output);
    let tiles = rows * n.div_ceil(COLUMNS) * m.div_ceil(ROWS);
    assert!(tiles >= current_threading_panel_threshold(), "large enough to split");
    let mut want = vec![0i8; m * rows * n];
    for (t, batch) in batches.iter().enumerate() {
        let mut one = vec![0i8; m * n];
        op.run(&[*batch], &mut one).unwrap();
        for c in 0..m {
            want[(c * rows + t) * n..][..n].copy_from_slice(&one[c * n..][..n]);
        }
    }
    let mut single = vec![0i8; m * rows * n];
    op.run(&batches, &mut single).unwrap();
    assert_eq!(single, want, "one thread");
    let mut four = vec![0i8; m * rows * n];
    multithread_tract_scope(Executor::multithread(4), || op.run(&batches, &mut four)).unwrap();
    assert_eq!(four, want, "four threads");
}
