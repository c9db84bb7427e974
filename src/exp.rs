//! `exp` over slices, the inner step of softmax.

/// Replaces every `x` in `xs` with `exp(x)`.
pub(crate) fn exp_f32(xs: &mut [f32]) {
    for x in xs {
        *x = x.exp();
    }
}

/// Replaces every `x` in `xs` with `exp(x)`.
pub(crate) fn exp_f64(xs: &mut [f64]) {
    for x in xs {
        *x = x.exp();
    }
}
