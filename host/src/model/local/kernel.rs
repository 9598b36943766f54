//! Matmul kernels for GGML Q4_1 and Q8_0 weights with f32 activations, for
//! decode steps with few rows.
//!
//! candle 0.11.1 computes these products with integer dot products that use
//! AVX2 when present and scalar code otherwise. These kernels dequantize each
//! 32-weight block once into f32 and reuse it for every activation row, so a
//! batch of rows reads the weights once. The f32 loops vectorize with any
//! SIMD the compiler targets.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Result, Tensor};
use half::f16;
use rayon::prelude::*;

/// Weights per GGML block for both supported types.
const BLOCK: usize = 32;
/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// A `(rows, columns)` weight matrix in GGML Q4_1 or Q8_0 blocks.
#[derive(Debug, Clone)]
pub struct QuantizedMatrix {
    dtype: GgmlDType,
    data: Vec<u8>,
    rows: usize,
    columns: usize,
}

impl QuantizedMatrix {
    /// Copies the blocks of `tensor`, or returns `None` for other types.
    pub fn from_qtensor(tensor: &QTensor) -> Result<Option<Self>> {
        let dtype = tensor.dtype();
        if !matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q8_0) {
            return Ok(None);
        }
        let (rows, columns) = tensor.shape().dims2()?;
        let data = tensor.data()?.into_owned();
        if columns % BLOCK != 0 || data.len() != rows * columns / BLOCK * dtype.type_size() {
            return Ok(None);
        }
        Ok(Some(Self {
            dtype,
            data,
            rows,
            columns,
        }))
    }

    /// Computes `x W^T` for `x` of shape `(m, columns)` on the CPU. Each
    /// output row is computed the same way whatever `m` is, so results do not
    /// depend on the batch a row is in.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (m, columns) = x.dims2()?;
        if columns != self.columns {
            candle_core::bail!("matmul input has {columns} columns, the weight has {}", self.columns);
        }
        let input: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let block_bytes = self.dtype.type_size();
        let row_bytes = self.columns / BLOCK * block_bytes;

        // Output transposed, `(rows, m)`, so each task writes one contiguous chunk.
        let mut transposed = vec![0f32; self.rows * m];
        transposed
            .par_chunks_mut(ROWS_PER_TASK * m)
            .enumerate()
            .for_each(|(task, chunk)| {
                let first_row = task * ROWS_PER_TASK;
                let rows = &self.data[first_row * row_bytes..(first_row + chunk.len() / m) * row_bytes];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports the features the function enables.
                    unsafe { avx::products(self.dtype, rows, &input, m, columns, chunk) };
                    return;
                }
                self.products(rows, &input, m, columns, chunk);
            });

        let output = Tensor::from_vec(transposed, (self.rows, m), x.device())?;
        output.t()?.contiguous()
    }

    /// Portable kernel: writes `x W_r^T` for each weight row `W_r` in `rows`
    /// to `outputs`, `m` values per row.
    fn products(&self, rows: &[u8], input: &[f32], m: usize, columns: usize, outputs: &mut [f32]) {
        let block_bytes = self.dtype.type_size();
        let mut accumulators = vec![[0f32; BLOCK]; m];
        let mut weights = [0f32; BLOCK];
        for (row, row_outputs) in rows
            .chunks_exact(columns / BLOCK * block_bytes)
            .zip(outputs.chunks_mut(m))
        {
            accumulators.iter_mut().for_each(|a| *a = [0.0; BLOCK]);
            for (block_index, block) in row.chunks_exact(block_bytes).enumerate() {
                self.dequantize_block(block, &mut weights);
                for (sample, accumulator) in accumulators.iter_mut().enumerate() {
                    let xs = &input[sample * columns + block_index * BLOCK..][..BLOCK];
                    for j in 0..BLOCK {
                        accumulator[j] = multiply_add(weights[j], xs[j], accumulator[j]);
                    }
                }
            }
            for (output, accumulator) in row_outputs.iter_mut().zip(&accumulators) {
                *output = sum_lanes(accumulator);
            }
        }
    }

    fn dequantize_block(&self, block: &[u8], weights: &mut [f32; BLOCK]) {
        let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
        match self.dtype {
            GgmlDType::Q4_1 => {
                // Layout: scale d, minimum m, then 16 bytes whose low nibbles
                // are weights 0..16 and high nibbles weights 16..32.
                let minimum = f16::from_le_bytes([block[2], block[3]]).to_f32();
                let nibbles = &block[4..20];
                for j in 0..BLOCK / 2 {
                    weights[j] = multiply_add(f32::from(nibbles[j] & 0x0F), scale, minimum);
                    weights[j + BLOCK / 2] = multiply_add(f32::from(nibbles[j] >> 4), scale, minimum);
                }
            }
            _ => {
                // Q8_0 layout: scale d, then 32 signed bytes.
                for (weight, &byte) in weights.iter_mut().zip(&block[2..2 + BLOCK]) {
                    *weight = f32::from(byte as i8) * scale;
                }
            }
        }
    }
}

/// AVX and FMA kernel for x86-64 CPUs without AVX2, where candle falls back
/// to scalar code.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{BLOCK, GgmlDType};
    use half::f16;
    use std::arch::x86_64::*;

    /// Same contract as `QuantizedMatrix::products`.
    #[target_feature(enable = "avx,fma,sse4.1")]
    pub unsafe fn products(
        dtype: GgmlDType,
        rows: &[u8],
        input: &[f32],
        m: usize,
        columns: usize,
        outputs: &mut [f32],
    ) {
        let block_bytes = dtype.type_size();
        let mut accumulators = vec![[_mm256_setzero_ps(); 4]; m];
        for (row, row_outputs) in rows
            .chunks_exact(columns / BLOCK * block_bytes)
            .zip(outputs.chunks_mut(m))
        {
            accumulators.iter_mut().for_each(|a| *a = [_mm256_setzero_ps(); 4]);
            for (block_index, block) in row.chunks_exact(block_bytes).enumerate() {
                let weights = unsafe { dequantize(dtype, block) };
                for (sample, accumulator) in accumulators.iter_mut().enumerate() {
                    let xs = &input[sample * columns + block_index * BLOCK..][..BLOCK];
                    for (lane, weight) in weights.iter().enumerate() {
                        let x = unsafe { _mm256_loadu_ps(xs.as_ptr().add(lane * 8)) };
                        accumulator[lane] = _mm256_fmadd_ps(*weight, x, accumulator[lane]);
                    }
                }
            }
            for (output, accumulator) in row_outputs.iter_mut().zip(&accumulators) {
                *output = horizontal_sum(accumulator);
            }
        }
    }

    /// Expands one Q4_1 or Q8_0 block (layouts as in the portable kernel)
    /// into four vectors of eight f32 weights.
    #[target_feature(enable = "avx,fma,sse4.1")]
    unsafe fn dequantize(dtype: GgmlDType, block: &[u8]) -> [__m256; 4] {
        let scale = _mm256_set1_ps(f16::from_le_bytes([block[0], block[1]]).to_f32());
        if dtype == GgmlDType::Q4_1 {
            let minimum = _mm256_set1_ps(f16::from_le_bytes([block[2], block[3]]).to_f32());
            let packed = unsafe { _mm_loadu_si128(block[4..20].as_ptr().cast()) };
            let mask = _mm_set1_epi8(0x0F);
            let low = _mm_and_si128(packed, mask);
            let high = _mm_and_si128(_mm_srli_epi16::<4>(packed), mask);
            let [w0, w1] = widen(low, false);
            let [w2, w3] = widen(high, false);
            [w0, w1, w2, w3].map(|w| _mm256_fmadd_ps(w, scale, minimum))
        } else {
            let first = unsafe { _mm_loadu_si128(block[2..18].as_ptr().cast()) };
            let second = unsafe { _mm_loadu_si128(block[18..34].as_ptr().cast()) };
            let [w0, w1] = widen(first, true);
            let [w2, w3] = widen(second, true);
            [w0, w1, w2, w3].map(|w| _mm256_mul_ps(w, scale))
        }
    }

    /// Converts 16 bytes, unsigned or signed, to two vectors of eight f32.
    #[target_feature(enable = "avx,fma,sse4.1")]
    fn widen(bytes: __m128i, signed: bool) -> [__m256; 2] {
        let extend = |v: __m128i| {
            if signed {
                _mm_cvtepi8_epi32(v)
            } else {
                _mm_cvtepu8_epi32(v)
            }
        };
        let quarters = [
            extend(bytes),
            extend(_mm_srli_si128::<4>(bytes)),
            extend(_mm_srli_si128::<8>(bytes)),
            extend(_mm_srli_si128::<12>(bytes)),
        ];
        [
            _mm256_cvtepi32_ps(_mm256_set_m128i(quarters[1], quarters[0])),
            _mm256_cvtepi32_ps(_mm256_set_m128i(quarters[3], quarters[2])),
        ]
    }

    /// Sums four vectors of eight lanes in a fixed order.
    #[target_feature(enable = "avx,fma,sse4.1")]
    fn horizontal_sum(vectors: &[__m256; 4]) -> f32 {
        let sum = _mm256_add_ps(
            _mm256_add_ps(vectors[0], vectors[1]),
            _mm256_add_ps(vectors[2], vectors[3]),
        );
        let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let single = _mm_add_ss(quarter, _mm_movehdup_ps(quarter));
        _mm_cvtss_f32(single)
    }
}

/// Returns `a * b + c`, fused where the target has FMA instructions, since
/// `f32::mul_add` without them is a slow library call.
#[inline(always)]
fn multiply_add(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(any(target_feature = "fma", target_arch = "aarch64")) {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Sums 32 lanes in a fixed tree order.
fn sum_lanes(lanes: &[f32; BLOCK]) -> f32 {
    let mut eight = [0f32; 8];
    for chunk in lanes.chunks_exact(8) {
        for (sum, value) in eight.iter_mut().zip(chunk) {
            *sum += value;
        }
    }
    let four = [
        eight[0] + eight[4],
        eight[1] + eight[5],
        eight[2] + eight[6],
        eight[3] + eight[7],
    ];
    (four[0] + four[2]) + (four[1] + four[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_dequantized_matmul() {
        let device = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (70, 96), &device).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 96), &device).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let quantized = QTensor::quantize(&weight, dtype).unwrap();
            let expected = x.matmul(&quantized.dequantize(&device).unwrap().t().unwrap()).unwrap();
            let kernel = QuantizedMatrix::from_qtensor(&quantized)
                .unwrap()
                .expect("type is supported");
            let actual = kernel.forward(&x).unwrap();
            let error: f32 = (actual - expected)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(error < 1e-3, "{dtype:?} kernel differs by {error}");
        }
    }

    #[test]
    fn rows_do_not_depend_on_batch() {
        let device = Device::Cpu;
        let weight =
            QTensor::quantize(&Tensor::randn(0f32, 1.0, (130, 64), &device).unwrap(), GgmlDType::Q4_1).unwrap();
        let kernel = QuantizedMatrix::from_qtensor(&weight)
            .unwrap()
            .expect("type is supported");
        let x = Tensor::randn(0f32, 1.0, (5, 64), &device).unwrap();
        let batch: Vec<Vec<f32>> = kernel.forward(&x).unwrap().to_vec2().unwrap();
        let single: Vec<Vec<f32>> = kernel.forward(&x.narrow(0, 2, 1).unwrap()).unwrap().to_vec2().unwrap();
        assert_eq!(batch[2], single[0]);
    }
}
