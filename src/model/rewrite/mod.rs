//! yolod's rewrite of tract's optimised int8 plan: where tract spends
//! whole-tensor passes or generic code on an int8 YOLOv8, one of ours
//! replaces it. [`rewrite`] is the one entry point; it runs the passes in
//! this order, each on what the one before left:
//!
//! 1. [`patches`]: tract's im2col for int8 convolutions becomes [`patches::Patches`],
//!    which writes the matmul's packed panels straight from the image.
//!    Proven bit-exact against tract's own packer, panel by panel, and on
//!    the whole model (`tests.rs`).
//! 2. [`pack`]: the packing of the other int8 matmul inputs (activations
//!    that are not convolved through im2col) into the same panel layout;
//!    after 1, because it reuses the layout [`patches`] chose.
//! 3. [`quantize`]: QuantizeLinear as one pass (NEON on aarch64) in place
//!    of tract's chain of element-wise ops; bit-exact, round-ties-even.
//! 4. [`activation`]: each convolution's i32 bias add, cast, per-channel
//!    rescale, SiLU and the next layer's quantize become one pass through
//!    an L1-sized buffer. After 3, because it absorbs the op 3 made. With
//!    tract's SiLU kernel it is bit-exact; with ours (`silu.rs`, what runs)
//!    values may differ by one int8 step (tested in `tests.rs`).
//! 5. [`maxpool`]: the SPPF max pools, int8 and fp32, as separable passes;
//!    bit-exact (max is exact).
//! 6. [`conv`]: where the CPU has the dot product, each convolution's
//!    matmul and its activation (from 4, with our SiLU) become one pass of
//!    8 x 8 SDOT tiles that apply the activation in registers; bit-exact
//!    against 1-5. After 4, whose op it absorbs.
//!
//! Every pass finds its pattern by tract's op types (`Im2Col`,
//! `OptMatMulPack`, `PackedI8K4`, ...): tract is pinned to 0.23.9 in
//! Cargo.toml for that reason. A pass that finds nothing leaves the plan as
//! it was; the [`RewriteReport`] says how many nodes each pass replaced.

// Output tensors it fills completely are allocated uninitialised.
#[allow(unsafe_code)]
pub mod activation;
// Its NEON tile is inline assembly; the output is written by several threads.
#[allow(unsafe_code)]
pub mod conv;
#[allow(unsafe_code)]
pub mod maxpool;
// tract's packed matmul inputs are raw, aligned byte blobs.
#[allow(unsafe_code)]
pub mod pack;
#[allow(unsafe_code)]
pub mod patches;
#[allow(unsafe_code)]
pub mod quantize;
#[allow(unsafe_code)]
mod silu;

#[cfg(test)]
mod tests;

use anyhow::Result;
use tract_onnx::prelude::*;

/// Which of tract's ops an int8 plan replaces with ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnOps {
    /// None: tract's plan as it optimises it.
    None,
    /// Passes 1-5, with tract's SiLU kernel inside [`activation`]: the same
    /// values as tract's plan, bit for bit.
    #[cfg_attr(not(test), allow(dead_code))]
    Exact,
    /// `Exact`, with our SiLU kernel (`silu.rs`; NEON on aarch64, the same
    /// values elsewhere), each convolution still through tract's matmul.
    #[cfg_attr(not(test), allow(dead_code))]
    OwnSilu,
    /// `OwnSilu`, and pass 6 where the CPU has the dot product: what runs.
    All,
    /// `All` with pass 6 on any CPU and packing, by its portable tiles
    /// (tests: pass 6 on x86).
    #[cfg_attr(not(test), allow(dead_code))]
    Everywhere,
}

/// How many nodes each pass replaced in one plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewriteReport {
    pub im2col: usize,
    pub pack: usize,
    pub quantize: usize,
    pub activations: usize,
    pub max_pools: usize,
    pub convolutions: usize,
}

impl std::fmt::Display for RewriteReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RewriteReport { im2col, pack, quantize, activations, max_pools, convolutions } = self;
        write!(
            f,
            "{im2col} im2col, {pack} packs, {quantize} quantizes, {activations} activation chains, {max_pools} max pools, \
             {convolutions} fused convolutions"
        )
    }
}

/// Runs the passes on an optimised plan, in the order above. `OwnOps::None`
/// leaves it untouched.
pub fn rewrite(model: &mut TypedModel, own: OwnOps) -> Result<RewriteReport> {
    if own == OwnOps::None {
        return Ok(RewriteReport::default());
    }
    let report = RewriteReport {
        im2col: patches::replace_int8_im2col(model)?,
        pack: pack::replace_int8_pack(model)?,
        quantize: quantize::replace_quantize_linear(model)?,
        activations: activation::fuse_activations(model, own != OwnOps::Exact)?,
        max_pools: maxpool::replace_max_pools(model)?,
        convolutions: match own {
            OwnOps::All | OwnOps::Everywhere => conv::fuse_convolutions(model, own == OwnOps::Everywhere)?,
            _ => 0,
        },
    };
    Ok(report)
}
