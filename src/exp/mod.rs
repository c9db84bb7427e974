//! `exp` over slices and SIMD vectors, the inner step of softmax and of the fused
//! attention kernel.
//!
//! Every level uses the same method. The input is clamped to the range where the result
//! is neither 0 nor `+∞` by a margin, then split as `x = k·ln 2 + r` with integer `k`
//! and `|r| ≤ ln 2 / 2` (Cody–Waite: `ln 2` in two parts, so `k·ln2_hi` is exact). A
//! polynomial that fixes the constant term at 1 approximates `e^r`, and the result is
//! scaled by `2^k`. The polynomials interpolate `e^r` at Chebyshev nodes, which keeps
//! their own relative error below `6e-9` (degree 6, `f32`) and `1e-17` (degree 11,
//! `f64`) on that interval, well below half an ulp. `exp(0)` is exactly 1, NaN stays
//! NaN, `−∞` gives 0 and `+∞` gives `+∞`.
//!
//! `2^x` follows the same steps with `k = round(x)` and `r = x − k`, which is exact, and
//! a polynomial for `2^r` on `|r| ≤ 1/2`. The SIMD attention kernels fold `log2 e` into
//! their score scale and use it, which saves the reduction's multiplies.

mod portable;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

use crate::isa::Isa;

/// Coefficients `c_0 ..= c_6` of the `f32` polynomial `e^r ≈ Σ c_i·r^i` on
/// `|r| ≤ ln 2 / 2`. The literals keep the digits of the fit and round once, to `f32`.
#[allow(clippy::excessive_precision)]
const EXP_F32_POLY: [f32; 7] = [
    1.0,
    1.000_000_010_771_570_1,
    0.500_000_001_345_772_7,
    0.166_665_052_604_081_23,
    0.041_666_465_006_040_05,
    0.008_369_148_490_856_347,
    0.001_393_364_103_198_670_1,
];

/// Coefficients `c_0 ..= c_11` of the `f64` polynomial `e^r ≈ Σ c_i·r^i` on
/// `|r| ≤ ln 2 / 2`. The literals keep the digits of the fit and round once, to `f64`.
#[allow(clippy::excessive_precision)]
const EXP_F64_POLY: [f64; 12] = [
    1.0,
    1.0,
    0.500_000_000_000_000_561_692_459_3,
    0.166_666_666_666_666_709_863_326_2,
    0.041_666_666_666_573_142_610_602_33,
    0.008_333_333_333_326_140_883_978_706,
    0.001_388_888_893_248_859_818_134_173,
    0.000_198_412_698_748_004_919_807_579_7,
    0.000_024_801_504_346_997_687_255_393_51,
    0.000_002_755_725_542_574_643_428_181_815,
    0.000_000_276_263_572_414_472_228_551_535_6,
    0.000_000_025_105_206_373_957_011_116_038_21,
];

/// Coefficients `c_0 ..= c_6` of the `f32` polynomial `2^r ≈ Σ c_i·r^i` on `|r| ≤ 1/2`,
/// fitted the same way, relative error below `6e-9`.
#[allow(clippy::excessive_precision)]
const EXP2_F32_POLY: [f32; 7] = [
    1.0,
    0.693_147_188_026_228_781_058_149_6,
    0.240_226_507_605_681_269_445_917,
    0.055_503_571_142_190_778_186_073_02,
    0.009_618_082_557_277_851_491_269_443,
    0.001_339_086_336_467_123_438_118_152,
    0.000_154_531_629_451_206_901_769_970_1,
];

/// Coefficients `c_0 ..= c_11` of the `f64` polynomial `2^r ≈ Σ c_i·r^i` on `|r| ≤ 1/2`,
/// relative error below `1e-17`. The fit returns `ln 2` itself for `c_1`.
#[allow(clippy::excessive_precision)]
const EXP2_F64_POLY: [f64; 12] = [
    1.0,
    std::f64::consts::LN_2,
    0.240_226_506_959_100_982_200_386_2,
    0.055_504_108_664_821_594_338_694_77,
    0.009_618_129_107_606_888_527_277_57,
    0.001_333_355_814_641_693_531_041,
    0.000_154_035_304_417_360_501_549_178_9,
    0.000_015_252_733_829_836_118_394_379_76,
    0.000_001_321_544_258_792_168_965_296_273,
    0.000_000_101_780_624_458_457_735_206_833_3,
    0.000_000_007_072_585_949_269_223_699_856_946,
    0.000_000_000_445_496_059_818_651_839_377_934_9,
];

/// `2^x` clamps its input to `[EXP2_*_MIN, EXP2_*_MAX]`, where the result has already
/// rounded to 0 or overflowed.
const EXP2_F32_MIN: f32 = -151.0;
const EXP2_F32_MAX: f32 = 129.0;
const EXP2_F64_MIN: f64 = -1076.0;
const EXP2_F64_MAX: f64 = 1025.0;

/// `f32` inputs are clamped to `[EXP_F32_MIN, EXP_F32_MAX]`: `e^-104` rounds to 0 and
/// `e^89` overflows, so clamping does not change any result.
const EXP_F32_MIN: f32 = -104.0;
const EXP_F32_MAX: f32 = 89.0;
/// `f64` inputs are clamped to `[EXP_F64_MIN, EXP_F64_MAX]`: `e^-746` rounds to 0 and
/// `e^710` overflows.
const EXP_F64_MIN: f64 = -746.0;
const EXP_F64_MAX: f64 = 710.0;

/// `ln 2` split so that `LN2_HI` has enough trailing zero bits for `k·LN2_HI` to be
/// exact for every `k` the clamped range produces: 355/512 for `f32`, and the leading 32
/// bits of `ln 2` for `f64`. `LN2_LO` is the rest, rounded.
const LN2_HI_F32: f32 = f32::from_bits(0x3F31_8000);
const LN2_LO_F32: f32 = -2.121_944_4e-4;
const LN2_HI_F64: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO_F64: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);

/// Replaces every `x` in `xs` with `exp(x)`, on the fastest kernel this CPU supports.
pub(crate) fn exp_f32(xs: &mut [f32]) {
    exp_f32_with(Isa::detected(), xs);
}

/// Replaces every `x` in `xs` with `exp(x)`, on the fastest kernel this CPU supports.
pub(crate) fn exp_f64(xs: &mut [f64]) {
    exp_f64_with(Isa::detected(), xs);
}

/// Replaces every `x` in `xs` with `exp(x)`, on the kernel of `isa`, or on the portable
/// kernel when this CPU does not support `isa`.
///
/// ```
/// use qkv::kernels::{Isa, exp_f32_with};
///
/// for isa in Isa::supported() {
///     let mut xs = [0.0_f32, 1.0, f32::NEG_INFINITY];
///     exp_f32_with(isa, &mut xs);
///     assert_eq!(xs[0], 1.0);
///     assert!((xs[1] - std::f32::consts::E).abs() <= f32::EPSILON * 4.0);
///     assert_eq!(xs[2], 0.0);
/// }
/// ```
pub fn exp_f32_with(isa: Isa, xs: &mut [f32]) {
    match isa.or_portable() {
        Isa::Portable => xs.iter_mut().for_each(|x| *x = portable::exp_f32(*x)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::exp_slice_f32(xs),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::exp_slice_f32(xs),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level is supported off x86-64"),
    }
}

/// Replaces every `x` in `xs` with `2^x`, on the kernel of `isa`, or on the portable
/// kernel when this CPU does not support `isa`. The SIMD attention kernels use this form.
///
/// ```
/// use qkv::kernels::{Isa, exp2_f32_with};
///
/// for isa in Isa::supported() {
///     let mut xs = [0.0_f32, -3.0, -0.5];
///     exp2_f32_with(isa, &mut xs);
///     assert_eq!(xs[..2], [1.0, 0.125]);
///     assert!((xs[2] - std::f32::consts::FRAC_1_SQRT_2).abs() <= f32::EPSILON);
/// }
/// ```
pub fn exp2_f32_with(isa: Isa, xs: &mut [f32]) {
    match isa.or_portable() {
        Isa::Portable => xs.iter_mut().for_each(|x| *x = portable::exp2_f32(*x)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::exp2_slice_f32(xs),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::exp2_slice_f32(xs),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level is supported off x86-64"),
    }
}

/// Replaces every `x` in `xs` with `2^x`, on the kernel of `isa`, or on the portable
/// kernel when this CPU does not support `isa`. The SIMD attention kernels use this form.
///
/// ```
/// use qkv::kernels::{Isa, exp2_f64_with};
///
/// for isa in Isa::supported() {
///     let mut xs = [0.0_f64, -10.0, 1024.0];
///     exp2_f64_with(isa, &mut xs);
///     assert_eq!(xs, [1.0, 1.0 / 1024.0, f64::INFINITY]);
/// }
/// ```
pub fn exp2_f64_with(isa: Isa, xs: &mut [f64]) {
    match isa.or_portable() {
        Isa::Portable => xs.iter_mut().for_each(|x| *x = portable::exp2_f64(*x)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::exp2_slice_f64(xs),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::exp2_slice_f64(xs),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level is supported off x86-64"),
    }
}

/// Replaces every `x` in `xs` with `exp(x)`, on the kernel of `isa`, or on the portable
/// kernel when this CPU does not support `isa`.
///
/// ```
/// use qkv::kernels::{Isa, exp_f64_with};
///
/// for isa in Isa::supported() {
///     let mut xs = [0.0_f64, -1.0, 800.0];
///     exp_f64_with(isa, &mut xs);
///     assert_eq!(xs[0], 1.0);
///     assert!((xs[1] - (-1.0_f64).exp()).abs() <= f64::EPSILON);
///     assert_eq!(xs[2], f64::INFINITY);
/// }
/// ```
pub fn exp_f64_with(isa: Isa, xs: &mut [f64]) {
    match isa.or_portable() {
        Isa::Portable => xs.iter_mut().for_each(|x| *x = portable::exp_f64(*x)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::exp_slice_f64(xs),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::exp_slice_f64(xs),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable level is supported off x86-64"),
    }
}
