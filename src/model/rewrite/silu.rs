//! The fused activation's inner loop on aarch64: rescale, SiLU and
//! quantize, 16 accumulators at a time, in NEON registers.
//!
//! tract's SiLU kernel evaluates a rational polynomial accurate to a few
//! f32 steps: about 6.4 instructions per element, and the rescale and
//! quantize passes around it add about 3 more (profile in BENCHMARKS.md).
//! An int8 activation does not need that accuracy: its output step is
//! 0.01 to 0.1. Here `silu(x) = x / (1 + 2^t)` with `t = -x log2(e)`, and
//! `2^t` is built from its integer part (the exponent bits) and a cubic in
//! its fraction (relative error 7.7e-5, so the SiLU is off by at most
//! 3.5e-5 in absolute terms). The quantization rounds as the portable
//! path does.
//!
//! The same formula runs everywhere, in the same order of operations
//! (unfused multiplies and adds): NEON on aarch64, a portable loop
//! elsewhere, bit for bit the same values, so an x86 box and a Pi give
//! the same int8 activations. The rescale is folded into the multiplies
//! that follow it: `t = v (-scale log2 e)` and `silu = v / (1 + 2^t) *
//! scale`, with `v = acc + bias` as f32.

/// 2^f on [-1/2, 1/2], lowest degree first: a least-squares fit of the
/// relative error on Chebyshev nodes (max relative error 7.7e-5).
const EXP2: [f32; 4] = [0.999_928_95, 0.693_276_2, 0.242_604_05, 0.055_088_684];

/// Bound on `t`: 2^t and 2^-t stay normal f32 whatever the fraction.
const T_MAX: f32 = 115.0;

/// 1.5 x 2^23: `t + ROUND` holds `t` rounded to nearest (ties to even) in
/// its low mantissa bits, for |t| < 2^22.
// The portable path is built where it runs (not aarch64) and where it is
// the reference the NEON kernels are tested against.
#[cfg(any(not(target_arch = "aarch64"), test))]
const ROUND: f32 = 12_582_912.0;

/// `v / (1 + 2^t)`, `t = v t_scale` clamped to +-T_MAX: the kernel's
/// formula for one value, as the portable loops run it.
#[cfg(any(not(target_arch = "aarch64"), test))]
#[inline(always)]
// max then min, not clamp: a NaN becomes -T_MAX as in the NEON kernel's
// FMAX/FMIN, where clamp would pass it through.
#[allow(clippy::manual_clamp)]
fn divided(v: f32, t_scale: f32) -> f32 {
    let t = (v * t_scale).max(-T_MAX).min(T_MAX);
    let r = t + ROUND;
    let f = t - (r - ROUND);
    let p = ((EXP2[3] * f + EXP2[2]) * f + EXP2[1]) * f + EXP2[0];
    // 2^t = 2^f 2^n: n (the low bits of r) added to the exponent field.
    let e = f32::from_bits(p.to_bits().wrapping_add(r.to_bits() << 23));
    v / (1.0 + e)
}

/// The SiLU of `x` by the kernel's formula.
#[cfg(test)]
fn reference(x: f32) -> f32 {
    divided(x, -std::f32::consts::LOG2_E)
}

/// The portable kernels, also the reference for the NEON ones.
#[cfg(any(not(target_arch = "aarch64"), test))]
mod portable {
    use super::divided;

    pub fn silu_f32(acc: &[i32], bias: i32, scale: f32, out: &mut [f32]) -> usize {
        let t_scale = -scale * std::f32::consts::LOG2_E;
        for (y, a) in out.iter_mut().zip(acc) {
            *y = divided(a.wrapping_add(bias) as f32, t_scale) * scale;
        }
        acc.len().min(out.len())
    }

    pub fn silu_i8(acc: &[i32], bias: i32, scale: f32, q_scale: f32, zero_point: i8, out: &mut [i8]) -> usize {
        let t_scale = -scale * std::f32::consts::LOG2_E;
        let mut buf = [0f32; 64];
        for (a, o) in acc.chunks(64).zip(out.chunks_mut(64)) {
            let buf = &mut buf[..a.len().min(o.len())];
            for (y, a) in buf.iter_mut().zip(a) {
                *y = divided(a.wrapping_add(bias) as f32, t_scale);
            }
            super::super::quantize::quantize(buf, &mut o[..buf.len()], scale * q_scale, zero_point);
        }
        acc.len().min(out.len())
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) mod neon {
    use super::{EXP2, T_MAX};
    use std::arch::aarch64::*;

    /// Sixteen elements at a time, the last (short) group through a
    /// zero-padded copy; `kernel` maps 16 accumulators to 16 outputs.
    #[inline(always)]
    fn by_sixteen<T: Copy + Default>(
        acc: &[i32],
        out: &mut [T],
        mut kernel: impl FnMut(&[i32; 16], &mut [T; 16]),
    ) -> usize {
        let n = acc.len().min(out.len());
        let (acc, out) = (&acc[..n], &mut out[..n]);
        let mut a = acc.chunks_exact(16);
        let mut o = out.chunks_exact_mut(16);
        for (a, o) in (&mut a).zip(&mut o) {
            kernel(a.try_into().unwrap(), o.try_into().unwrap());
        }
        let (a, o) = (a.remainder(), o.into_remainder());
        if !a.is_empty() {
            let (mut a16, mut o16) = ([0; 16], [T::default(); 16]);
            a16[..a.len()].copy_from_slice(a);
            kernel(&a16, &mut o16);
            o.copy_from_slice(&o16[..a.len()]);
        }
        n
    }

    /// `v / (1 + 2^t)` and `v` as f32 for the sixteen `acc + bias`, with
    /// `t = -v scale log2(e)`: the SiLU of the rescaled values, divided by
    /// `scale` (the callers fold it into their last multiply).
    #[inline(always)]
    fn activate(acc: &[i32; 16], bias: int32x4_t, t_scale: f32) -> [float32x4_t; 4] {
        // SAFETY: 4 i + 4 <= 16 i32 are readable at acc; NEON is part of aarch64.
        [0, 4, 8, 12].map(|i| unsafe { divided(vaddq_s32(vld1q_s32(acc.as_ptr().add(i)), bias), t_scale) })
    }

    /// `v / (1 + 2^t)` for four `v = acc + bias` (as f32), `t = v t_scale`:
    /// one vector of [`activate`], for callers that add the bias themselves.
    #[inline(always)]
    pub(in super::super) fn divided(acc: int32x4_t, t_scale: f32) -> float32x4_t {
        // SAFETY: NEON is part of aarch64; no memory is touched.
        unsafe {
            let v = vcvtq_f32_s32(acc);
            vdivq_f32(v, vaddq_f32(exp2(vmulq_n_f32(v, t_scale)), vdupq_n_f32(1.0)))
        }
    }

    /// 2^t, t clamped to +-T_MAX.
    #[inline(always)]
    fn exp2(t: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is part of aarch64; no memory is touched.
        unsafe {
            let t = vminq_f32(vmaxq_f32(t, vdupq_n_f32(-T_MAX)), vdupq_n_f32(T_MAX));
            let n = vcvtnq_s32_f32(t);
            let f = vsubq_f32(t, vcvtq_f32_s32(n));
            // Unfused, in the portable order: the same bits.
            let p = vaddq_f32(vmulq_n_f32(f, EXP2[3]), vdupq_n_f32(EXP2[2]));
            let p = vaddq_f32(vmulq_f32(p, f), vdupq_n_f32(EXP2[1]));
            let p = vaddq_f32(vmulq_f32(p, f), vdupq_n_f32(EXP2[0]));
            // 2^t = 2^f 2^n: n added to the exponent field.
            vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), vshlq_n_s32::<23>(n)))
        }
    }

    pub fn silu_f32(acc: &[i32], bias: i32, scale: f32, out: &mut [f32]) -> usize {
        // SAFETY: NEON is part of aarch64.
        let b = unsafe { vdupq_n_s32(bias) };
        let t_scale = -scale * std::f32::consts::LOG2_E;
        by_sixteen(acc, out, |a, o| {
            for (i, y) in activate(a, b, t_scale).into_iter().enumerate() {
                // SAFETY: o has 16 elements; 4 i + 4 <= 16.
                unsafe { vst1q_f32(o.as_mut_ptr().add(4 * i), vmulq_n_f32(y, scale)) };
            }
        })
    }

    pub fn silu_i8(acc: &[i32], bias: i32, scale: f32, q_scale: f32, zero_point: i8, out: &mut [i8]) -> usize {
        // SAFETY: NEON is part of aarch64.
        let b = unsafe { vdupq_n_s32(bias) };
        let t_scale = -scale * std::f32::consts::LOG2_E;
        by_sixteen(acc, out, |a, o| {
            let bytes = super::super::quantize::quantize_lanes(activate(a, b, t_scale), scale * q_scale, zero_point);
            // SAFETY: o has 16 elements.
            unsafe { vst1q_s8(o.as_mut_ptr(), bytes) };
        })
    }
}

/// `out[i] = silu((acc[i] + bias) as f32 * scale)`; returns how many
/// elements it did (all that both slices hold).
pub fn silu_f32(acc: &[i32], bias: i32, scale: f32, out: &mut [f32]) -> usize {
    #[cfg(target_arch = "aarch64")]
    return neon::silu_f32(acc, bias, scale, out);
    #[cfg(not(target_arch = "aarch64"))]
    return portable::silu_f32(acc, bias, scale, out);
}

/// [`silu_f32`], then quantized as [`super::quantize::quantize`] does with
/// `q_scale` and `zero_point`; returns how many elements it did.
pub fn silu_i8(acc: &[i32], bias: i32, scale: f32, q_scale: f32, zero_point: i8, out: &mut [i8]) -> usize {
    #[cfg(target_arch = "aarch64")]
    return neon::silu_i8(acc, bias, scale, q_scale, zero_point, out);
    #[cfg(not(target_arch = "aarch64"))]
    return portable::silu_i8(acc, bias, scale, q_scale, zero_point, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(x: f32) -> f64 {
        let x = x as f64;
        x / (1.0 + (-x).exp())
    }

    /// The formula itself, against f64, over the range activations take
    /// and far beyond: within 3.6e-5, or 8e-5 relative for large values.
    #[test]
    fn the_formula_is_within_its_bound_of_silu() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-4;
            let err = (reference(x) as f64 - exact(x)).abs();
            worst = worst.max(err / exact(x).abs().max(1.0));
        }
        assert!(worst < 8e-5, "worst error {worst}");
        // Far beyond: a rescaled i32 accumulator stays within 1e9.
        for x in [-1e9, -1e4, -200.0, -80.0, 80.0, 200.0, 1e4, 1e9f32] {
            let (got, want) = (reference(x) as f64, exact(x));
            assert!((got - want).abs() <= 3.6e-5f64.max(8e-5 * want.abs()), "silu({x}) = {got}, not {want}");
        }
    }

    /// The kernels (NEON on aarch64) against the exact SiLU, quantized the
    /// portable way: the same i8 except where the exact value lies on a
    /// rounding boundary; and the f32 kernel within the formula's bound.
    #[test]
    fn the_kernels_quantize_the_silu() {
        let acc: Vec<i32> = (0..40_000)
            .map(|i| (i - 20_000) * 37 + (i % 7) * 1_000_003 - 3_000_000)
            .chain([i32::MIN, i32::MAX, 0, -1])
            .collect();
        let n = acc.len();
        assert_ne!(n % 16, 0, "a short last group is part of the test");
        for (bias, scale) in [(0, 1e-3f32), (-1234, 3e-5), (77_000, 2e-4), (5, 1e-6)] {
            let rescaled: Vec<f32> = acc.iter().map(|a| a.wrapping_add(bias) as f32 * scale).collect();
            let mut ys = vec![f32::NAN; n];
            assert_eq!(silu_f32(&acc, bias, scale, &mut ys), n);
            for (x, y) in rescaled.iter().zip(&ys) {
                let want = exact(*x);
                assert!((*y as f64 - want).abs() <= 3.6e-5f64.max(8e-5 * want.abs()), "silu({x}) = {y}, not {want}");
            }
            for (q_scale, zero_point) in [(1.0 / 0.05f32, -3i8), (1.0 / 0.013, 12), (40.0, -128)] {
                let mut qs = vec![0x55i8; n];
                assert_eq!(silu_i8(&acc, bias, scale, q_scale, zero_point, &mut qs), n);
                let mut want = vec![0i8; n];
                let silus: Vec<f32> = rescaled.iter().map(|x| exact(*x) as f32).collect();
                super::super::quantize::quantize(&silus, &mut want, q_scale, zero_point);
                for (i, (got, want)) in qs.iter().zip(&want).enumerate() {
                    let at = exact(rescaled[i]) * q_scale as f64;
                    let on_boundary = (at - at.floor() - 0.5).abs() < 5e-3;
                    assert!(
                        got == want || (on_boundary && got.abs_diff(*want) == 1),
                        "acc {} -> {got}, not {want}",
                        acc[i]
                    );
                }
            }
        }
    }

    /// NEON and the portable loops: the same bits, so that every machine
    /// computes the same int8 activations.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_gives_the_portable_bits() {
        let acc: Vec<i32> =
            (0..20_011).map(|i| (i - 10_000) * 211 + (i % 13) * 700_001).chain([i32::MIN, i32::MAX]).collect();
        for (bias, scale) in [(0, 1e-3f32), (-1234, 3e-5), (77_000, 2e-4)] {
            let (mut a, mut b) = (vec![0f32; acc.len()], vec![1f32; acc.len()]);
            neon::silu_f32(&acc, bias, scale, &mut a);
            portable::silu_f32(&acc, bias, scale, &mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "f32, bias {bias}, scale {scale}");
            let (mut a, mut b) = (vec![0i8; acc.len()], vec![1i8; acc.len()]);
            neon::silu_i8(&acc, bias, scale, 1.0 / 0.031, -7, &mut a);
            portable::silu_i8(&acc, bias, scale, 1.0 / 0.031, -7, &mut b);
            assert_eq!(a, b, "i8, bias {bias}, scale {scale}");
        }
    }
}
