// Forward attention for inference (non-causal), fp16/bf16, head_dim 64 or 128.
//
// Pure CUDA: no torch headers, so `nvcc -c attention_fwd.cu` builds it on its own (CI's compile check) and
// binding.cpp is the only file that knows about tensors.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace videocascade {

enum class AttnDtype : int { kFloat16 = 0, kBFloat16 = 1 };

// Tensors are [batch, heads, len, head_dim], contiguous along head_dim; strides are in elements.
// Leave a stride 0 for a dimension of size 1 (any value is fine there, 0 keeps the alignment check simple).
struct AttentionFwdParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  // Optional key-padding mask: nullptr, or bytes [batch][heads][kv_len] (nonzero = attend), contiguous
  // along kv_len; batch/head strides may be 0 to broadcast.
  const uint8_t* key_mask = nullptr;

  int64_t q_batch_stride = 0, q_head_stride = 0, q_row_stride = 0;
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_row_stride = 0;
  int64_t o_batch_stride = 0, o_head_stride = 0, o_row_stride = 0;
  int64_t mask_batch_stride = 0, mask_head_stride = 0;

  int batch = 0, heads = 0, q_len = 0, kv_len = 0, head_dim = 0;
  float softmax_scale = 0.f;  // usually 1 / sqrt(head_dim)
  AttnDtype dtype = AttnDtype::kBFloat16;
};

// nullptr when the kernel supports `params`, else a sentence saying what is wrong.
const char* attention_forward_check(const AttentionFwdParams& params);

// Launch on `stream`. `variant` 0 picks the default tile shape for the head_dim; 1..num_variants() force
// one (for benchmarking). Returns cudaSuccess, or the error of the check or the launch.
cudaError_t attention_forward(const AttentionFwdParams& params, int variant, cudaStream_t stream);

int attention_forward_num_variants();
// "w<warps>_m<m-tiles per warp>_n<block n>" or nullptr when out of range.
const char* attention_forward_variant_name(int variant);
// The variant that `variant == 0` resolves to for this head_dim.
int attention_forward_default_variant(int head_dim);

}  // namespace videocascade
