//! SIMD micro-kernels for `f32` and `f64` on x86-64: AVX-512F and AVX2 with FMA.
//!
//! Each kernel is a zero-sized token that can only be built after the CPU was checked
//! for its features, so holding one proves that its instructions may run. Both kernels
//! compute every term with one fused multiply-add, so they give the same bits.

/// Defines a micro-kernel function over one SIMD register type: a `ROWS × (NV·LANES)`
/// tile of accumulators, one broadcast of `A` and one fused multiply-add per vector and
/// per step `p`. `ROWS` is a const parameter, so an edge tile of fewer rows than `MR`
/// runs a kernel of its own height instead of computing padding rows.
///
/// The generated function is `unsafe`. Its caller must have checked the CPU features
/// named in its `#[target_feature]` attribute. It must pass pointers to a panel of `A`
/// with at least `ROWS` rows and `k` columns and to the `k × NR` panel of `B`, at the
/// given strides. It must also pass a pointer to the `rows × cols` corner of `C` (row
/// stride `ldc`), with `rows <= ROWS`.
macro_rules! simd_tile {
    (
        $(#[$attr:meta])*
        $name:ident: $t:ty, nv = $nv:expr, lanes = $lanes:expr,
        zero = $zero:path, splat = $splat:path, load = $load:path, store = $store:path, fma = $fma:path $(,)?
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name<const ROWS: usize>(
            k: usize,
            a: *const $t,
            a_row_stride: usize,
            a_col_stride: usize,
            b: *const $t,
            b_row_stride: usize,
            c: *mut $t,
            ldc: usize,
            rows: usize,
            cols: usize,
            accumulate: bool,
        ) {
            const VECS: usize = $nv;
            const LANES: usize = $lanes;
            const COLS: usize = VECS * LANES;
            let full = rows == ROWS && cols == COLS;

            let mut acc = [[$zero(); VECS]; ROWS];

            if accumulate {
                // Edge tiles pass through a zero-padded copy, so the vector loads stay whole.
                let mut staged = [[0.0 as $t; COLS]; ROWS];
                if !full {
                    for (i, staged_row) in staged.iter_mut().enumerate().take(rows) {
                        for (j, x) in staged_row.iter_mut().enumerate().take(cols) {
                            // SAFETY: (i, j) lies in the rows × cols corner the caller vouches for.
                            *x = unsafe { *c.add(i * ldc + j) };
                        }
                    }
                }
                let (src, stride) = if full { (c.cast_const(), ldc) } else { (staged.as_ptr().cast::<$t>(), COLS) };
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    for (v, acc_iv) in acc_row.iter_mut().enumerate() {
                        // SAFETY: a full tile reads the ROWS × COLS block of `c` that the
                        // caller vouches for. An edge tile reads `staged`, which is ROWS × COLS.
                        *acc_iv = unsafe { $load(src.add(i * stride + v * LANES)) };
                    }
                }
            }

            // Fetch the tile of C now, so that the stores at the end do not wait for it.
            if full {
                for i in 0..ROWS {
                    for line in 0..COLS * size_of::<$t>() / 64 {
                        let address = c.wrapping_add(i * ldc + line * 64 / size_of::<$t>());
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast_const().cast());
                    }
                }
            }

            // The rank-1 updates, one per p in increasing order.
            let (mut a, mut b) = (a, b);
            for _ in 0..k {
                let mut b_p = [$zero(); VECS];
                for (v, b_pv) in b_p.iter_mut().enumerate() {
                    // SAFETY: row p of the B panel has COLS elements for p < k.
                    *b_pv = unsafe { $load(b.add(v * LANES)) };
                }
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    // SAFETY: element (i, p) of the A panel is in bounds for i < ROWS, p < k.
                    let a_ip = $splat(unsafe { *a.add(i * a_row_stride) });
                    for (acc_iv, &b_pv) in acc_row.iter_mut().zip(&b_p) {
                        *acc_iv = $fma(a_ip, b_pv, *acc_iv);
                    }
                }
                // Wrapping, because after the last step the pointers may leave the
                // panels; they are only read while p < k.
                a = a.wrapping_add(a_col_stride);
                b = b.wrapping_add(b_row_stride);
            }

            if full {
                for (i, acc_row) in acc.iter().enumerate() {
                    for (v, &acc_iv) in acc_row.iter().enumerate() {
                        // SAFETY: a full tile writes the ROWS × COLS block the caller vouches for.
                        unsafe { $store(c.add(i * ldc + v * LANES), acc_iv) };
                    }
                }
            } else {
                // Edge tiles store through a copy and write back only the rows × cols corner.
                let mut staged = [[0.0 as $t; COLS]; ROWS];
                for (staged_row, acc_row) in staged.iter_mut().zip(&acc) {
                    for (v, &acc_iv) in acc_row.iter().enumerate() {
                        // SAFETY: each row of `staged` has COLS = VECS · LANES values.
                        unsafe { $store(staged_row.as_mut_ptr().add(v * LANES), acc_iv) };
                    }
                }
                for (i, staged_row) in staged.iter().enumerate().take(rows) {
                    for (j, &x) in staged_row.iter().enumerate().take(cols) {
                        // SAFETY: (i, j) lies in the rows × cols corner the caller vouches for.
                        unsafe { *c.add(i * ldc + j) = x };
                    }
                }
            }
        }
    };
}

mod avx2;
mod avx512;

use super::kernel::{APanel, BPanel, MicroKernel, check_tile};
use super::small::gemm_small;
use crate::matrix::MatrixView;

/// The AVX-512F kernels: a 6 × 64 tile for `f32` and 6 × 32 for `f64` (24 of the 32
/// vector registers contain the tile).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512 {
    _detected: (),
}

impl Avx512 {
    /// Returns the kernel token when this CPU supports AVX-512F.
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Self { _detected: () })
    }
}

/// The AVX2 kernels: a 6 × 16 tile for `f32` and 6 × 8 for `f64` (12 of the 16 vector
/// registers contain the tile).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2Fma {
    _detected: (),
}

impl Avx2Fma {
    /// Returns the kernel token when this CPU supports AVX2 and FMA.
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Self { _detected: () })
    }
}

/// Implements [`MicroKernel`] for a token type and an element type with one kernel
/// function from `simd_tile!`, checking the slices before it reads through pointers.
macro_rules! impl_micro_kernel {
    (
        $token:ty, $t:ty, $tile_module:ident::$tile:ident, $small:path,
        mr = $mr:expr, nr = $nr:expr, kc = $kc:expr, mc = $mc:expr, nc = $nc:expr $(,)?
    ) => {
        impl MicroKernel<$t> for $token {
            const MR: usize = $mr;
            const NR: usize = $nr;
            const KC: usize = $kc;
            const MC: usize = $mc;
            const NC: usize = $nc;

            fn tile(
                self,
                k: usize,
                a: APanel<'_, $t>,
                b: BPanel<'_, $t>,
                c: &mut [$t],
                ldc: usize,
                rows: usize,
                cols: usize,
                accumulate: bool,
            ) {
                check_tile($mr, $nr, k, a, b, c, ldc, rows, cols);
                let (a_ptr, b_ptr) = (a.data.as_ptr(), b.data.as_ptr());
                // A tile of fewer rows than MR runs a kernel of its own height.
                const { assert!($mr == 6, "the dispatch below covers six rows") };
                type Tile =
                    unsafe fn(usize, *const $t, usize, usize, *const $t, usize, *mut $t, usize, usize, usize, bool);
                let tile: Tile = match rows {
                    1 => $tile_module::$tile::<1>,
                    2 => $tile_module::$tile::<2>,
                    3 => $tile_module::$tile::<3>,
                    4 => $tile_module::$tile::<4>,
                    5 => $tile_module::$tile::<5>,
                    _ => $tile_module::$tile::<6>,
                };
                // SAFETY: the token exists only when the CPU has the kernel's features.
                // `check_tile` bounds every access: the MR × k panel of `a`, of which the
                // kernel reads the first `rows` rows, the k × NR panel of `b`, and the
                // rows × cols corner of `c`.
                unsafe {
                    tile(
                        k,
                        a_ptr,
                        a.row_stride,
                        a.col_stride,
                        b_ptr,
                        b.row_stride,
                        c.as_mut_ptr(),
                        ldc,
                        rows,
                        cols,
                        accumulate,
                    )
                }
            }

            fn gemm_small(self, a: MatrixView<'_, $t>, b: MatrixView<'_, $t>, c: &mut [$t], ldc: usize) {
                // SAFETY: the token exists only when the CPU has the features `$small` is
                // compiled for, and `$small` reads and writes through slices only.
                unsafe { $small(a, b, c, ldc) }
            }
        }
    };
}

// Block sizes measured on an AMD EPYC (Zen 4) core with a 32 KiB L1d, a 1 MiB L2 and
// a shared 32 MiB L3, for each kernel in turn (the AVX2 ones forced on the same core).
// A deep KC means fewer passes that load and store each tile of C. A block of B
// (KC × NC) is 1 MiB, the size of L2: its panels stream to the kernel from L2 and L3,
// which the prefetchers sustain. Going from KC = 256 to 1024 made f64 products of
// n = 1024 about 5 % faster, and f32 ones (from KC = 512) about 1 %. Only an `A` that
// is not row-major gets packed in full, in blocks of MC × KC (1.5 MiB in f32, 3 MiB in f64)
// read from L3. MC = 1536 ran `Aᵀ·B` up to 4 % faster, but its buffer would stay
// allocated on each thread at 6 or 12 MiB.
impl_micro_kernel!(
    Avx512,
    f32,
    avx512::tile_f32,
    avx512::small_f32,
    mr = avx512::MR,
    nr = avx512::NR_F32,
    kc = 1024,
    mc = 384,
    nc = 256
);
impl_micro_kernel!(
    Avx512,
    f64,
    avx512::tile_f64,
    avx512::small_f64,
    mr = avx512::MR,
    nr = avx512::NR_F64,
    kc = 1024,
    mc = 384,
    nc = 128
);

// NOTE: the AVX2 sizes were measured on Zen 4 only. A CPU whose best kernel is AVX2 may
// have a smaller L2, and none was measured.
impl_micro_kernel!(
    Avx2Fma,
    f32,
    avx2::tile_f32,
    avx2::small_f32,
    mr = avx2::MR,
    nr = avx2::NR_F32,
    kc = 1024,
    mc = 384,
    nc = 256
);
impl_micro_kernel!(
    Avx2Fma,
    f64,
    avx2::tile_f64,
    avx2::small_f64,
    mr = avx2::MR,
    nr = avx2::NR_F64,
    kc = 1024,
    mc = 384,
    nc = 128
);
