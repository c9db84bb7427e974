//! Scalar `exp` in safe Rust, written without branches so that LLVM can vectorise a loop
//! over a slice for the build target.

use super::{
    EXP_F32_MAX, EXP_F32_MIN, EXP_F32_POLY, EXP_F64_MAX, EXP_F64_MIN, EXP_F64_POLY, EXP2_F32_MAX, EXP2_F32_MIN,
    EXP2_F32_POLY, EXP2_F64_MAX, EXP2_F64_MIN, EXP2_F64_POLY, LN2_HI_F32, LN2_HI_F64, LN2_LO_F32, LN2_LO_F64,
};

/// Adding and subtracting `1.5·2^23` rounds an `f32` of magnitude below `2^22` to the
/// nearest integer, ties to even.
const ROUND_F32: f32 = 12_582_912.0;
/// Adding and subtracting `1.5·2^52` rounds an `f64` of magnitude below `2^51` to the
/// nearest integer, ties to even.
const ROUND_F64: f64 = 6_755_399_441_055_744.0;

/// Returns `e^x`.
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Comparisons with NaN are false, so NaN passes through the clamp.
    let x = if x < EXP_F32_MIN { EXP_F32_MIN } else { x };
    let x = if x > EXP_F32_MAX { EXP_F32_MAX } else { x };

    let k = (x * std::f32::consts::LOG2_E + ROUND_F32) - ROUND_F32;
    let r = (x - k * LN2_HI_F32) - k * LN2_LO_F32;
    let p = horner_f32(&EXP_F32_POLY, r);

    // 2^k in two factors, each a normal number, so that results in the subnormal range
    // are rounded once, by the last multiply. NaN converts to k = 0 and stays NaN in p.
    let k = k as i32;
    let half = k / 2;
    p * pow2_f32(half) * pow2_f32(k - half)
}

/// Returns `e^x`.
pub(crate) fn exp_f64(x: f64) -> f64 {
    let x = if x < EXP_F64_MIN { EXP_F64_MIN } else { x };
    let x = if x > EXP_F64_MAX { EXP_F64_MAX } else { x };

    let k = (x * std::f64::consts::LOG2_E + ROUND_F64) - ROUND_F64;
    let r = (x - k * LN2_HI_F64) - k * LN2_LO_F64;
    let p = horner_f64(&EXP_F64_POLY, r);

    let k = k as i64;
    let half = k / 2;
    p * pow2_f64(half) * pow2_f64(k - half)
}

/// Returns `2^x`.
pub(crate) fn exp2_f32(x: f32) -> f32 {
    let x = if x < EXP2_F32_MIN { EXP2_F32_MIN } else { x };
    let x = if x > EXP2_F32_MAX { EXP2_F32_MAX } else { x };

    let k = (x + ROUND_F32) - ROUND_F32;
    let p = horner_f32(&EXP2_F32_POLY, x - k);

    let k = k as i32;
    let half = k / 2;
    p * pow2_f32(half) * pow2_f32(k - half)
}

/// Returns `2^x`.
pub(crate) fn exp2_f64(x: f64) -> f64 {
    let x = if x < EXP2_F64_MIN { EXP2_F64_MIN } else { x };
    let x = if x > EXP2_F64_MAX { EXP2_F64_MAX } else { x };

    let k = (x + ROUND_F64) - ROUND_F64;
    let p = horner_f64(&EXP2_F64_POLY, x - k);

    let k = k as i64;
    let half = k / 2;
    p * pow2_f64(half) * pow2_f64(k - half)
}

/// Returns `2^e` for `e` in the normal exponent range `-126..=127`.
fn pow2_f32(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// Returns `2^e` for `e` in the normal exponent range `-1022..=1023`.
fn pow2_f64(e: i64) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r` by Horner's
/// rule.
fn horner_f32(poly: &[f32], r: f32) -> f32 {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    rest.iter().rev().fold(*last, |acc, &c| acc * r + c)
}

/// Evaluates the polynomial with coefficients `poly` (constant first) at `r` by Horner's
/// rule.
fn horner_f64(poly: &[f64], r: f64) -> f64 {
    let (last, rest) = poly.split_last().expect("the polynomial has coefficients");
    rest.iter().rev().fold(*last, |acc, &c| acc * r + c)
}
