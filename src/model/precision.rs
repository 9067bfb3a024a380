//! Which of the two embedded YOLOv8n files runs: int8 where the CPU makes it
//! pay, fp32 elsewhere.
//!
//! int8 wins on arm64 cores with the dot-product extension (SDOT: Cortex-A76
//! in the Pi 5, A78AE in the Jetson Orin): 0.39x fp32's instructions at 640
//! (BENCHMARKS.md). Cores without it (A72 in the Pi 4, A53, A57) run tract's
//! int8 kernel on SMLAL, 4 MACs an instruction like FMLA, and lose. On
//! x86_64 yolod's own int8 passes are NEON-only, so int8 is slower there.
//!
//! The extension is read from the auxiliary vector (`AT_HWCAP`), as
//! tract-linalg does, not from /proc/cpuinfo: under qemu-user that file is
//! the host's, while the auxiliary vector is the emulated core's.

/// What `--precision` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// int8 where the CPU has the dot-product extension, fp32 elsewhere.
    #[default]
    Auto,
    Int8,
    Fp32,
}

/// The precision that runs, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub int8: bool,
    /// e.g. "auto: cpu has asimddp".
    pub reason: String,
}

/// What the CPU offers that the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    /// An arm64 core; `dotprod` is `HWCAP_ASIMDDP`.
    Arm64 { dotprod: bool },
    /// Anything else (x86_64).
    Other,
}

/// `AT_HWCAP` in the auxiliary vector.
const AT_HWCAP: u64 = 16;
/// arm64's `HWCAP_ASIMDDP` (asm/hwcap.h): SDOT/UDOT.
const HWCAP_ASIMDDP: u64 = 1 << 20;

impl Cpu {
    /// The CPU this process runs on.
    pub fn detect() -> Cpu {
        if cfg!(target_arch = "aarch64") {
            let hwcap = std::fs::read("/proc/self/auxv").ok().and_then(|auxv| auxv_value(&auxv, AT_HWCAP));
            Cpu::Arm64 { dotprod: hwcap.is_some_and(|h| h & HWCAP_ASIMDDP != 0) }
        } else {
            Cpu::Other
        }
    }
}

/// Looks `key` up in a 64-bit auxiliary vector: (type, value) pairs of
/// native-endian u64, ended by type 0.
fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("chunks of 8"));
    auxv.chunks_exact(16)
        .map(|pair| (word(&pair[..8]), word(&pair[8..])))
        .take_while(|(k, _)| *k != 0)
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Resolves `asked` on `cpu`.
pub fn choose(asked: Precision, cpu: Cpu) -> Choice {
    let (int8, reason) = match (asked, cpu) {
        (Precision::Int8, _) => (true, "asked for".to_string()),
        (Precision::Fp32, _) => (false, "asked for".to_string()),
        (Precision::Auto, Cpu::Arm64 { dotprod: true }) => (true, "auto: cpu has asimddp".to_string()),
        (Precision::Auto, Cpu::Arm64 { dotprod: false }) => {
            (false, "auto: cpu lacks asimddp, where int8 is slower".to_string())
        }
        (Precision::Auto, Cpu::Other) => (false, "auto: int8 is slower on this architecture".to_string()),
    };
    Choice { int8, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auxv(pairs: &[(u64, u64)]) -> Vec<u8> {
        pairs.iter().flat_map(|(k, v)| [k.to_ne_bytes(), v.to_ne_bytes()]).flatten().collect()
    }

    #[test]
    fn hwcap_is_read_from_the_auxiliary_vector() {
        let v = auxv(&[(6, 4096), (AT_HWCAP, HWCAP_ASIMDDP | 0xff), (0, 0), (AT_HWCAP, 0)]);
        assert_eq!(auxv_value(&v, AT_HWCAP), Some(HWCAP_ASIMDDP | 0xff));
        assert_eq!(auxv_value(&v, 26), None);
        // Nothing past the terminator, nothing from a torn pair.
        assert_eq!(auxv_value(&auxv(&[(0, 0), (AT_HWCAP, 1)]), AT_HWCAP), None);
        assert_eq!(auxv_value(&v[..8], AT_HWCAP), None);
    }

    #[test]
    fn auto_picks_int8_only_with_the_dot_product() {
        assert!(choose(Precision::Auto, Cpu::Arm64 { dotprod: true }).int8);
        assert!(!choose(Precision::Auto, Cpu::Arm64 { dotprod: false }).int8);
        assert!(!choose(Precision::Auto, Cpu::Other).int8);
        assert!(choose(Precision::Int8, Cpu::Other).int8);
        assert!(!choose(Precision::Fp32, Cpu::Arm64 { dotprod: true }).int8);
        assert_eq!(choose(Precision::Auto, Cpu::Arm64 { dotprod: true }).reason, "auto: cpu has asimddp");
    }

    #[test]
    fn this_machine_is_detected() {
        let cpu = Cpu::detect();
        if cfg!(target_arch = "aarch64") {
            assert!(matches!(cpu, Cpu::Arm64 { .. }));
        } else {
            assert_eq!(cpu, Cpu::Other);
        }
    }
}
