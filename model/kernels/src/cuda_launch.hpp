#pragma once
// The project's own CUDA kernels (cuda_mlp.cu), launched from host code compiled by g++.
#include <cuda_runtime_api.h>

#include <cstddef>

namespace troupe::kernels::cuda_impl {

/// x[r][c] += bias[c], then max(x, 0) when relu: fused, one pass over the activations.
void launch_bias_activation(float* x, const float* bias, int rows, int cols, bool relu,
                            cudaStream_t stream);
/// Writes through a null pointer: a deliberate illegal-address fault.
void launch_illegal_write(cudaStream_t stream);
/// Row-wise softmax in place, numerically stable (subtracts the row maximum).
void launch_softmax_rows(float* x, int rows, int cols, cudaStream_t stream);
/// out[i] = x[i] rounded to bf16 (bf16 = true) or fp16, round to nearest even.
void launch_to_half(const float* x, void* out, size_t n, bool bf16, cudaStream_t stream);
/// *sum += the sum of x, accumulated in double (*sum must be zeroed first).
void launch_sum(const float* x, size_t n, double* sum, cudaStream_t stream);

}  // namespace troupe::kernels::cuda_impl
