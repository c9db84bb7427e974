//! The SIMD instruction sets that the hand-written `exp` and attention kernels have code
//! for, and the one this CPU runs, detected once per process.

use std::sync::OnceLock;

/// An instruction-set level with its own `exp` and attention kernels.
///
/// Every level computes the same functions. Results differ between levels only by
/// rounding, so a run on one machine is bit-reproducible, but two machines with
/// different levels may differ in the last bits.
///
/// ```
/// use qkv::kernels::Isa;
///
/// assert!(Isa::Portable.is_supported());
/// assert!(Isa::detected().is_supported());
/// assert_eq!(Isa::supported()[0], Isa::Portable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Safe Rust compiled for the build target, with no run-time feature checks.
    Portable,
    /// x86-64 AVX2 with FMA, on 256-bit vectors.
    Avx2,
    /// x86-64 AVX-512F, on 512-bit vectors.
    Avx512,
}

impl Isa {
    /// Returns the fastest level this CPU supports, detected on the first call.
    #[must_use]
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if Isa::Avx512.is_supported() {
                Isa::Avx512
            } else if Isa::Avx2.is_supported() {
                Isa::Avx2
            } else {
                Isa::Portable
            }
        })
    }

    /// Returns whether this CPU can run the kernels of this level.
    #[must_use]
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// Returns every level this CPU supports, [`Isa::Portable`] first.
    #[must_use]
    pub fn supported() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// Returns `self` when this CPU supports it, otherwise [`Isa::Portable`].
    pub(crate) fn or_portable(self) -> Isa {
        if self.is_supported() { self } else { Isa::Portable }
    }
}
