//! The interface between the fused driver and its per-instruction-set kernels: one key
//! block processed for one strip of query rows, with the query rows in vector lanes.
//!
//! A strip contains `lanes` query rows. Its state is stored transposed, lane-minor: element
//! `(p, lane)` of `Qᵀ` sits at `qt[p * lanes + lane]`, and likewise for the output
//! accumulator `Oᵀ` and the scores of a key block. The running max and sum of the online
//! softmax are then plain vectors, one lane per row, and every step treats lanes
//! independently, so a row's bits never depend on which rows share its strip.

#[cfg(target_arch = "x86_64")]
use super::simd;
use crate::isa::Isa;
use crate::scalar::Scalar;

/// One key block as a kernel reads it.
pub(crate) struct BlockInput<'a, T> {
    /// Width of a query and key row, `d_k`.
    pub(crate) d: usize,
    /// Width of a value row, `d_v`.
    pub(crate) d_v: usize,
    /// Factor applied to every dot product before the softmax.
    pub(crate) scale: T,
    /// Number of keys in the block.
    pub(crate) len: usize,
    /// Key `j` of the block is `keys[j * key_stride..][..d]`.
    pub(crate) keys: &'a [T],
    pub(crate) key_stride: usize,
    /// Value `j` of the block is `values[j * value_stride..][..d_v]`.
    pub(crate) values: &'a [T],
    pub(crate) value_stride: usize,
    /// For a block that some rows of the strip may not fully see: bit `lane` of
    /// `lane_masks[j]` is set iff that row may attend to key `j`. `None` when every row
    /// sees every key of the block.
    pub(crate) lane_masks: Option<&'a [u64]>,
}

/// The running state of one strip, updated by each key block.
pub(crate) struct StripState<'a, T> {
    /// `Qᵀ`, `d × lanes`, zero in lanes past the last row.
    pub(crate) qt: &'a [T],
    /// Unnormalised output `Oᵀ`, `d_v × lanes`.
    pub(crate) ot: &'a mut [T],
    /// Running maximum of the scaled scores per lane, `−∞` before any visible key. The
    /// SIMD kernels keep it in base 2, as `log2(e)` times the portable kernel's.
    pub(crate) max: &'a mut [T],
    /// Running sum of `exp(score − max)` per lane.
    pub(crate) sum: &'a mut [T],
    /// Scratch for the scores, then the probabilities, of one block: `key_block × lanes`.
    pub(crate) probs: &'a mut [T],
}

impl<T> BlockInput<'_, T> {
    /// Panics unless every slice is long enough for a kernel of `lanes` lanes to read
    /// and write without bounds checks. The SIMD kernels rely on this for soundness.
    pub(crate) fn check(&self, state: &StripState<'_, T>, lanes: usize) {
        let needed = |rows: usize, stride: usize, width: usize| {
            if rows == 0 || width == 0 { 0 } else { (rows - 1) * stride + width }
        };
        assert!(self.keys.len() >= needed(self.len, self.key_stride, self.d), "key block too short");
        assert!(self.d > 0 || self.key_stride == 0, "zero-width keys need a zero stride");
        assert!(self.values.len() >= needed(self.len, self.value_stride, self.d_v), "value block too short");
        assert!(self.lane_masks.is_none_or(|m| m.len() >= self.len), "lane masks too short");
        assert!(lanes <= 64, "a strip has at most 64 lanes");
        assert!(state.qt.len() >= self.d * lanes, "query strip too short");
        assert!(state.ot.len() >= self.d_v * lanes, "output strip too short");
        assert!(state.max.len() >= lanes, "running max too short");
        assert!(state.sum.len() >= lanes, "running sum too short");
        assert!(state.probs.len() >= self.len * lanes, "score scratch too short");
    }
}

/// A kernel that processes one key block for one strip, its strip width and its default
/// key block.
///
/// The constructors pick a SIMD kernel only when the CPU supports it. The SIMD entry
/// points are safe functions, so they check the CPU and the slice lengths again.
#[derive(Clone, Copy)]
pub struct StripKernel<T> {
    lanes: usize,
    key_block: usize,
    process: BlockFn<T>,
    /// A kernel of fewer lanes for calls with few query rows, such as a decoding step.
    /// Every lane runs the same operations in both kernels, so a row gets the same bits
    /// from either.
    // NOTE: one query row still fills a whole vector of lanes (16 for AVX-512 `f32`), so
    // a decoding step does up to that many times the arithmetic it needs.
    narrow: (usize, BlockFn<T>),
}

/// A kernel's entry point for one key block.
type BlockFn<T> = fn(&BlockInput<'_, T>, &mut StripState<'_, T>);

impl<T> std::fmt::Debug for StripKernel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripKernel").field("lanes", &self.lanes).field("key_block", &self.key_block).finish()
    }
}

impl<T: Scalar> StripKernel<T> {
    /// Returns the portable kernel, safe Rust for any [`Scalar`].
    pub(crate) fn portable() -> Self {
        let process = super::portable::process_block::<T>;
        Self { lanes: super::portable::LANES, key_block: 64, process, narrow: (super::portable::LANES, process) }
    }
}

impl<T> StripKernel<T> {
    /// Returns the kernel to run on `q_len` query rows: the narrow one when they fit in
    /// its strip.
    pub(crate) fn for_rows(self, q_len: usize) -> Self {
        let (lanes, process) = self.narrow;
        if q_len <= lanes { Self { lanes, process, ..self } } else { self }
    }

    /// Returns the number of query rows in a strip.
    pub(crate) fn lanes(&self) -> usize {
        self.lanes
    }

    /// Returns the default number of keys in a block.
    pub(crate) fn key_block(&self) -> usize {
        self.key_block
    }

    /// Runs the kernel on one key block.
    pub(crate) fn process(&self, input: &BlockInput<'_, T>, state: &mut StripState<'_, T>) {
        (self.process)(input, state);
    }
}

impl StripKernel<f32> {
    /// Returns the `f32` kernel of `isa`, or the portable one when the CPU lacks `isa`.
    pub(crate) fn for_f32(isa: Isa) -> Self {
        match isa.or_portable() {
            Isa::Portable => Self::portable(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Self {
                lanes: simd::AVX2_F32_LANES,
                key_block: 64,
                process: simd::avx2_f32,
                narrow: (simd::AVX2_F32_NARROW_LANES, simd::avx2_f32_narrow),
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Self {
                lanes: simd::AVX512_F32_LANES,
                key_block: 64,
                process: simd::avx512_f32,
                narrow: (simd::AVX512_F32_NARROW_LANES, simd::avx512_f32_narrow),
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => Self::portable(),
        }
    }
}

impl StripKernel<f64> {
    /// Returns the `f64` kernel of `isa`, or the portable one when the CPU lacks `isa`.
    pub(crate) fn for_f64(isa: Isa) -> Self {
        match isa.or_portable() {
            Isa::Portable => Self::portable(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Self {
                lanes: simd::AVX2_F64_LANES,
                key_block: 64,
                process: simd::avx2_f64,
                narrow: (simd::AVX2_F64_NARROW_LANES, simd::avx2_f64_narrow),
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Self {
                lanes: simd::AVX512_F64_LANES,
                key_block: 64,
                process: simd::avx512_f64,
                narrow: (simd::AVX512_F64_NARROW_LANES, simd::avx512_f64_narrow),
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => Self::portable(),
        }
    }
}
