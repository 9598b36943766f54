//! Linear layers that keep both an f32 and a quantized copy of their weight.

use super::kernel::QuantizedMatrix;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Module, Result, Tensor};
use std::borrow::Cow;

/// A quantized weight and the kernel that multiplies by it.
#[derive(Debug, Clone)]
enum QuantizedWeight {
    /// Q4_1 or Q8_0 on the CPU, with this crate's kernel.
    Blocks(QuantizedMatrix),
    /// Any other type or device, with candle's kernels.
    Candle(QMatMul),
}

impl QuantizedWeight {
    fn new(tensor: QTensor) -> Result<Option<Self>> {
        if !is_quantized(tensor.dtype()) {
            return Ok(None);
        }
        if tensor.device().is_cpu()
            && let Some(matrix) = QuantizedMatrix::from_qtensor(&tensor)?
        {
            return Ok(Some(Self::Blocks(matrix)));
        }
        Ok(Some(Self::Candle(QMatMul::from_qtensor(tensor)?)))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Blocks(matrix) => matrix.forward(x),
            Self::Candle(matmul) => matmul.forward(x),
        }
    }
}

/// A bias-free linear layer `y = x W^T`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight as `(out_features, in_features)` f32.
    weight: Tensor,
    /// The same weight in its GGUF quantization, when it has one.
    quantized: Option<QuantizedWeight>,
}

impl Linear {
    /// Builds an f32-only layer from a `(out_features, in_features)` weight.
    pub fn new(weight: Tensor) -> Self {
        Self {
            weight,
            quantized: None,
        }
    }

    /// Builds a layer from a GGUF tensor, dequantizing it for the f32 path.
    pub fn from_qtensor(tensor: QTensor) -> Result<Self> {
        let weight = tensor.dequantize(&tensor.device())?;
        let quantized = QuantizedWeight::new(tensor)?;
        Ok(Self { weight, quantized })
    }

    /// Stacks several GGUF tensors with the same input size along the output
    /// dimension, so one matmul computes all of them (Q, K and V; gate and up).
    pub fn from_qtensors(tensors: Vec<QTensor>) -> Result<Self> {
        let weights = tensors
            .iter()
            .map(|t| t.dequantize(&t.device()))
            .collect::<Result<Vec<_>>>()?;
        let weight = Tensor::cat(&weights, 0)?;
        let quantized = match stack_quantized(&tensors)? {
            Some(stacked) => QuantizedWeight::new(stacked)?,
            None => None,
        };
        Ok(Self { weight, quantized })
    }

    /// Adds `delta` to the output rows `offset..offset + delta.rows` of the
    /// weight, as when merging a LoRA adapter. The quantized copy no longer
    /// matches and is dropped, so the layer runs on the f32 path from then on.
    pub fn add_to_rows(&mut self, offset: usize, delta: &Tensor) -> Result<()> {
        let (rows, columns) = self.weight.dims2()?;
        let (delta_rows, delta_columns) = delta.dims2()?;
        if delta_columns != columns || offset + delta_rows > rows {
            candle_core::bail!(
                "delta {delta_rows}x{delta_columns} at row {offset} does not fit a {rows}x{columns} weight"
            );
        }

        let delta = delta.to_dtype(self.weight.dtype())?;
        let before = Tensor::zeros((offset, columns), self.weight.dtype(), self.weight.device())?;
        let after = Tensor::zeros(
            (rows - offset - delta_rows, columns),
            self.weight.dtype(),
            self.weight.device(),
        )?;
        let padded = Tensor::cat(&[&before, &delta, &after], 0)?;
        self.weight = (&self.weight + padded)?;
        self.quantized = None;
        Ok(())
    }

    /// Applies the layer to `x` of shape `(rows, in_features)`, with the
    /// quantized kernel when `quantized` is set and the layer has one, else
    /// with the f32 gemm.
    pub fn forward(&self, x: &Tensor, quantized: bool) -> Result<Tensor> {
        match &self.quantized {
            Some(kernel) if quantized => kernel.forward(x),
            _ => x.matmul(&self.weight.t()?),
        }
    }
}

/// Concatenates the rows of quantized tensors that share one quantization
/// type. GGML stores each row as whole blocks, so the row bytes concatenate.
/// Returns `None` when the types differ or are not quantized.
fn stack_quantized(tensors: &[QTensor]) -> Result<Option<QTensor>> {
    let dtype = tensors[0].dtype();
    if !is_quantized(dtype) || tensors.iter().any(|t| t.dtype() != dtype) {
        return Ok(None);
    }
    let columns = tensors[0].shape().dims2()?.1;
    let mut rows = 0;
    let mut bytes = Vec::new();
    for tensor in tensors {
        let (tensor_rows, tensor_columns) = tensor.shape().dims2()?;
        if tensor_columns != columns {
            return Ok(None);
        }
        rows += tensor_rows;
        bytes.extend_from_slice(&tensor.data()?);
    }
    let device = tensors[0].device();
    let storage = QStorage::from_data(Cow::Owned(bytes), &device, dtype)?;
    Ok(Some(QTensor::new(storage, (rows, columns))?))
}

fn is_quantized(dtype: GgmlDType) -> bool {
    !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}
