//! Which of the two embedded YOLOv8n files runs: int8 where the CPU makes it
//! pay, fp32 elsewhere. BENCHMARKS.md has the cycle estimates behind it.
//!
//! - Cores with the dot-product extension (SDOT: Cortex-A76 in the Pi 5,
//!   A78AE in the Jetson Orin): int8, 0.41x fp32's estimated cycles at 640.
//! - The Cortex-A72 (Pi 4), and the A57 (Jetson Nano) and A73 that run
//!   the same generic kernels in tract: int8. tract's int8 kernel there is
//!   SMLAL, 4 MACs an instruction like FMLA, and still comes out 0.96x
//!   (640) and 0.98x (320) of fp32's estimated cycles on the A72, with a
//!   quarter of the bytes to move, which the estimate (all loads hit L1)
//!   does not credit.
//! - The Cortex-A53 (Pi 3, Zero 2 W), other cores and x86_64: fp32. On the
//!   A53 tract runs its own A53 f32 kernels, which llvm-mca's A53 model
//!   rates at twice tract's generic ones, against tract's own measurements;
//!   against the generic ones int8 loses (1.08x-1.15x). On x86_64 yolod's
//!   int8 passes are NEON-only, so int8 is slower there.
//!
//! The extension is read from the auxiliary vector (`AT_HWCAP`), as
//! tract-linalg does, and the core from `MIDR_EL1` (which the kernel lets
//! user space read when `HWCAP_CPUID` says so), not from /proc/cpuinfo:
//! under qemu-user that file is the host's, while both of these are the
//! emulated core's.

/// What `--precision` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// int8 on arm64 cores with the dot-product extension and on the
    /// Cortex-A72/A57/A73, fp32 elsewhere.
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
    /// An arm64 core; `dotprod` is `HWCAP_ASIMDDP`, `part` the part number
    /// in `MIDR_EL1` of an Arm-designed core, when it can be read (0xd08 for
    /// a Cortex-A72).
    Arm64 { dotprod: bool, part: Option<u16> },
    /// Anything else (x86_64).
    Other,
}

/// `AT_HWCAP` in the auxiliary vector.
const AT_HWCAP: u64 = 16;
/// arm64's `HWCAP_ASIMDDP` (asm/hwcap.h): SDOT/UDOT.
const HWCAP_ASIMDDP: u64 = 1 << 20;
/// arm64's `HWCAP_CPUID`: the kernel emulates user-space reads of the ID
/// registers, `MIDR_EL1` among them.
const HWCAP_CPUID: u64 = 1 << 11;

/// Arm's part numbers (`MIDR_EL1` bits 4-15) of the cores without the dot
/// product on which int8 is estimated faster: Cortex-A57, A72, A73.
const INT8_WITHOUT_DOTPROD: [(u16, &str); 3] = [(0xd07, "Cortex-A57"), (0xd08, "Cortex-A72"), (0xd09, "Cortex-A73")];
/// The Cortex-A53's part number.
const PART_A53: u16 = 0xd03;

impl Cpu {
    /// The CPU this process runs on.
    pub fn detect() -> Cpu {
        if cfg!(target_arch = "aarch64") {
            let hwcap = std::fs::read("/proc/self/auxv").ok().and_then(|auxv| auxv_value(&auxv, AT_HWCAP));
            // The part of an Arm-designed core (implementer 0x41). On a
            // big.LITTLE board it is whichever core this thread is on.
            let midr = hwcap.filter(|h| h & HWCAP_CPUID != 0).map(|_| midr());
            let part = midr.filter(|m| m >> 24 & 0xff == 0x41).map(|m| (m >> 4 & 0xfff) as u16);
            Cpu::Arm64 { dotprod: hwcap.is_some_and(|h| h & HWCAP_ASIMDDP != 0), part }
        } else {
            Cpu::Other
        }
    }
}

/// `MIDR_EL1` of the core this thread runs on; only call it when
/// `HWCAP_CPUID` is set, else the read traps.
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
fn midr() -> u64 {
    let midr: u64;
    // SAFETY: reads a system register into a general one, touching no
    // memory; with HWCAP_CPUID the kernel (or qemu-user) emulates the read.
    unsafe { std::arch::asm!("mrs {}, midr_el1", out(reg) midr, options(nomem, nostack, preserves_flags)) };
    midr
}

#[cfg(not(target_arch = "aarch64"))]
fn midr() -> u64 {
    0
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
        (Precision::Auto, Cpu::Arm64 { dotprod: true, .. }) => (true, "auto: cpu has asimddp".to_string()),
        (Precision::Auto, Cpu::Arm64 { dotprod: false, part }) => {
            match INT8_WITHOUT_DOTPROD.iter().find(|(p, _)| Some(*p) == part) {
                Some((_, core)) => (true, format!("auto: {core}, where int8 is faster without asimddp too")),
                None if part == Some(PART_A53) => {
                    (false, "auto: Cortex-A53, where int8 is not shown faster".to_string())
                }
                None => (false, "auto: cpu lacks asimddp, and int8 is not shown faster on it".to_string()),
            }
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
    fn auto_picks_int8_with_the_dot_product_and_on_the_a72() {
        let arm = |dotprod, part| Cpu::Arm64 { dotprod, part };
        assert!(choose(Precision::Auto, arm(true, Some(0xd0b))).int8);
        assert!(choose(Precision::Auto, arm(true, None)).int8);
        assert!(choose(Precision::Auto, arm(false, Some(0xd08))).int8);
        assert!(choose(Precision::Auto, arm(false, Some(0xd07))).int8);
        assert!(!choose(Precision::Auto, arm(false, Some(PART_A53))).int8);
        assert!(!choose(Precision::Auto, arm(false, None)).int8);
        assert!(!choose(Precision::Auto, Cpu::Other).int8);
        assert!(choose(Precision::Int8, Cpu::Other).int8);
        assert!(!choose(Precision::Fp32, arm(true, None)).int8);
        assert_eq!(choose(Precision::Auto, arm(true, None)).reason, "auto: cpu has asimddp");
        assert_eq!(
            choose(Precision::Auto, arm(false, Some(0xd08))).reason,
            "auto: Cortex-A72, where int8 is faster without asimddp too"
        );
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
