//! Sweeps the vectorised `exp` and `2^x` of every instruction set this CPU supports
//! against `f64::exp` and `f64::exp2`, over the whole input range and the special values.

use qkv::kernels::{Isa, exp_f32_with, exp_f64_with, exp2_f32_with, exp2_f64_with};

/// Largest error allowed, in units in the last place of the expected result.
const MAX_ULPS: f64 = 3.0;

/// Returns the spacing of `f32` values at `x`, the size of one ulp there. Subnormal
/// results share the smallest spacing, `2^-149`.
fn ulp_f32(x: f64) -> f64 {
    let x = x.abs().max(f32::MIN_POSITIVE as f64);
    2f64.powi(x.log2().floor() as i32 - 23)
}

/// Returns the spacing of `f64` values at `x`.
fn ulp_f64(x: f64) -> f64 {
    let x = x.abs().max(f64::MIN_POSITIVE);
    let bits = x.to_bits();
    f64::from_bits(bits + 1) - x
}

/// Returns `count` evenly spaced points from `start` to `end`, both included.
fn sweep(start: f64, end: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start + (end - start) * i as f64 / (count - 1) as f64).collect()
}

#[test]
fn exp_f32_within_three_ulps_over_range() {
    // From below the underflow threshold (e^-103.97 is the smallest subnormal) to above
    // the overflow threshold (e^88.72 overflows).
    let xs: Vec<f32> = sweep(-105.0, 90.0, 400_001).into_iter().map(|x| x as f32).collect();
    for isa in Isa::supported() {
        let mut got = xs.clone();
        exp_f32_with(isa, &mut got);
        let mut worst = (0.0, 0.0_f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let exact = (x as f64).exp();
            if exact > f32::MAX as f64 {
                assert_eq!(y, f32::INFINITY, "{isa:?}: exp({x}) overflows to +inf, got {y}");
                continue;
            }
            let ulps = (y as f64 - exact).abs() / ulp_f32(exact);
            if ulps > worst.0 {
                worst = (ulps, x);
            }
        }
        assert!(worst.0 <= MAX_ULPS, "{isa:?}: exp_f32 is {:.2} ulp off at x = {}", worst.0, worst.1);
    }
}

#[test]
fn exp_f64_within_three_ulps_over_range() {
    let xs = sweep(-746.0, 710.0, 400_001);
    for isa in Isa::supported() {
        let mut got = xs.clone();
        exp_f64_with(isa, &mut got);
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&got) {
            let expected = x.exp();
            if expected.is_infinite() {
                assert_eq!(y, f64::INFINITY, "{isa:?}: exp({x}) overflows to +inf, got {y}");
                continue;
            }
            let ulps = (y - expected).abs() / ulp_f64(expected);
            if ulps > worst.0 {
                worst = (ulps, x);
            }
        }
        assert!(worst.0 <= MAX_ULPS, "{isa:?}: exp_f64 is {:.2} ulp off at x = {}", worst.0, worst.1);
    }
}

#[test]
fn exp_f64_within_three_ulps_on_kernel_range() {
    // The attention kernel evaluates exp(s − max) with s ≤ max, mostly in [-40, 0], so
    // this range gets a denser sweep.
    let xs = sweep(-40.0, 0.0, 1_000_001);
    for isa in Isa::supported() {
        let mut got = xs.clone();
        exp_f64_with(isa, &mut got);
        let worst = xs.iter().zip(&got).map(|(&x, &y)| (y - x.exp()).abs() / ulp_f64(x.exp())).fold(0.0, f64::max);
        assert!(worst <= MAX_ULPS, "{isa:?}: exp_f64 is {worst:.2} ulp off on [-40, 0]");
    }
}

#[test]
fn exp_special_values() {
    for isa in Isa::supported() {
        let mut xs = [0.0_f32, -0.0, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -1e30, 1e30, 88.8, -200.0];
        exp_f32_with(isa, &mut xs);
        assert_eq!(xs[..2], [1.0, 1.0], "{isa:?}: exp(±0)");
        assert_eq!(xs[2], 0.0, "{isa:?}: exp(-inf)");
        assert_eq!(xs[3], f32::INFINITY, "{isa:?}: exp(+inf)");
        assert!(xs[4].is_nan(), "{isa:?}: exp(NaN) is {}", xs[4]);
        assert_eq!(xs[5], 0.0, "{isa:?}: exp(-1e30)");
        assert_eq!(xs[6], f32::INFINITY, "{isa:?}: exp(1e30)");
        assert_eq!(xs[7], f32::INFINITY, "{isa:?}: exp(88.8)");
        assert_eq!(xs[8], 0.0, "{isa:?}: exp(-200)");

        let mut xs = [0.0_f64, f64::NEG_INFINITY, f64::INFINITY, f64::NAN, -1e300, 1e300, -800.0];
        exp_f64_with(isa, &mut xs);
        assert_eq!(xs[0], 1.0, "{isa:?}: exp(0)");
        assert_eq!(xs[1], 0.0, "{isa:?}: exp(-inf)");
        assert_eq!(xs[2], f64::INFINITY, "{isa:?}: exp(+inf)");
        assert!(xs[3].is_nan(), "{isa:?}: exp(NaN) is {}", xs[3]);
        assert_eq!(xs[4], 0.0, "{isa:?}: exp(-1e300)");
        assert_eq!(xs[5], f64::INFINITY, "{isa:?}: exp(1e300)");
        assert_eq!(xs[6], 0.0, "{isa:?}: exp(-800)");
    }
}

#[test]
fn exp_slice_lengths_match_elementwise() {
    // Every length up to three vectors, so that the full-vector loop and the tail both
    // run, gives the same values as exp of one element at a time.
    for isa in Isa::supported() {
        for len in 0..50 {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37) - 9.0).collect();
            let mut got = xs.clone();
            exp_f32_with(isa, &mut got);
            for (i, &x) in xs.iter().enumerate() {
                let mut single = [x];
                exp_f32_with(isa, &mut single);
                assert_eq!(got[i].to_bits(), single[0].to_bits(), "{isa:?}: len {len}, index {i}");
            }

            let xs: Vec<f64> = (0..len).map(|i| (i as f64 * 0.37) - 9.0).collect();
            let mut got = xs.clone();
            exp_f64_with(isa, &mut got);
            for (i, &x) in xs.iter().enumerate() {
                let mut single = [x];
                exp_f64_with(isa, &mut single);
                assert_eq!(got[i].to_bits(), single[0].to_bits(), "{isa:?}: len {len}, index {i}");
            }
        }
    }
}

#[test]
fn exp2_f32_within_three_ulps_over_range() {
    // 2^-149 is the smallest subnormal and 2^128 overflows.
    let xs: Vec<f32> = sweep(-151.0, 130.0, 400_001).into_iter().map(|x| x as f32).collect();
    for isa in Isa::supported() {
        let mut got = xs.clone();
        exp2_f32_with(isa, &mut got);
        let mut worst = (0.0, 0.0_f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let exact = (x as f64).exp2();
            if exact > f32::MAX as f64 {
                assert_eq!(y, f32::INFINITY, "{isa:?}: 2^{x} overflows to +inf, got {y}");
                continue;
            }
            let ulps = (y as f64 - exact).abs() / ulp_f32(exact);
            if ulps > worst.0 {
                worst = (ulps, x);
            }
        }
        assert!(worst.0 <= MAX_ULPS, "{isa:?}: exp2_f32 is {:.2} ulp off at x = {}", worst.0, worst.1);
    }
}

#[test]
fn exp2_f64_within_three_ulps_over_range() {
    // The dense sweep of [-60, 0] covers the scores the attention kernels pass in.
    for (start, end) in [(-1076.0, 1025.0), (-60.0, 0.0)] {
        let xs = sweep(start, end, 400_001);
        for isa in Isa::supported() {
            let mut got = xs.clone();
            exp2_f64_with(isa, &mut got);
            let mut worst = (0.0, 0.0);
            for (&x, &y) in xs.iter().zip(&got) {
                let expected = x.exp2();
                if expected.is_infinite() {
                    assert_eq!(y, f64::INFINITY, "{isa:?}: 2^{x} overflows to +inf, got {y}");
                    continue;
                }
                let ulps = (y - expected).abs() / ulp_f64(expected);
                if ulps > worst.0 {
                    worst = (ulps, x);
                }
            }
            assert!(worst.0 <= MAX_ULPS, "{isa:?}: exp2_f64 is {:.2} ulp off at x = {}", worst.0, worst.1);
        }
    }
}

#[test]
fn exp2_special_values() {
    for isa in Isa::supported() {
        let mut xs = [0.0_f32, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -1e30, 1e30, -3.0];
        exp2_f32_with(isa, &mut xs);
        assert_eq!(xs[0], 1.0, "{isa:?}: 2^0");
        assert_eq!(xs[1], 0.0, "{isa:?}: 2^-inf");
        assert_eq!(xs[2], f32::INFINITY, "{isa:?}: 2^+inf");
        assert!(xs[3].is_nan(), "{isa:?}: 2^NaN is {}", xs[3]);
        assert_eq!(xs[4], 0.0, "{isa:?}: 2^-1e30");
        assert_eq!(xs[5], f32::INFINITY, "{isa:?}: 2^1e30");
        assert_eq!(xs[6], 0.125, "{isa:?}: 2^-3");

        let mut xs = [0.0_f64, f64::NEG_INFINITY, f64::INFINITY, f64::NAN, -1e300, -1074.0];
        exp2_f64_with(isa, &mut xs);
        assert_eq!(xs[0], 1.0, "{isa:?}: 2^0");
        assert_eq!(xs[1], 0.0, "{isa:?}: 2^-inf");
        assert_eq!(xs[2], f64::INFINITY, "{isa:?}: 2^+inf");
        assert!(xs[3].is_nan(), "{isa:?}: 2^NaN is {}", xs[3]);
        assert_eq!(xs[4], 0.0, "{isa:?}: 2^-1e300");
        assert_eq!(xs[5], f64::from_bits(1), "{isa:?}: 2^-1074 is the smallest subnormal");
    }
}
