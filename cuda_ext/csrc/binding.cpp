// Torch binding of attention_fwd.cu: checks the tensors, allocates the output, launches on the current stream.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <optional>
#include <string>
#include <vector>

#include "attention_fwd.h"

namespace {

// A dimension of size 1 is never stepped over, so its stride is reported as 0 (PyTorch leaves arbitrary
// values there, which would fail the kernel's alignment check for no reason).
int64_t stride_or_zero(const torch::Tensor& t, int dim) { return t.size(dim) == 1 ? 0 : t.stride(dim); }

void check_operand(const torch::Tensor& t, const char* name, const torch::Tensor& q) {
  TORCH_CHECK(t.is_cuda(), "attention: ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.device() == q.device(), "attention: ", name, " is on ", t.device(), " but q is on ", q.device());
  TORCH_CHECK(t.dim() == 4, "attention: ", name, " must be [batch, heads, len, head_dim], got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == q.scalar_type(), "attention: ", name, " has dtype ", t.scalar_type(),
              " but q has ", q.scalar_type());
  TORCH_CHECK(t.stride(3) == 1 || t.size(3) == 1, "attention: ", name,
              " must be contiguous along head_dim (stride 1); call .contiguous() first");
}

torch::Tensor attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const std::optional<torch::Tensor>& key_mask, double softmax_scale,
                                int64_t variant) {
  check_operand(q, "q", q);
  check_operand(k, "k", q);
  check_operand(v, "v", q);
  TORCH_CHECK(q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16,
              "attention: the compiled kernel takes float16 or bfloat16, got ", q.scalar_type());
  const int64_t batch = q.size(0), heads = q.size(1), q_len = q.size(2), head_dim = q.size(3);
  const int64_t kv_len = k.size(2);
  TORCH_CHECK(head_dim == 64 || head_dim == 128, "attention: the compiled kernel takes head_dim 64 or 128, got ",
              head_dim);
  TORCH_CHECK(k.size(0) == batch && k.size(1) == heads && k.size(3) == head_dim,
              "attention: k must be [", batch, ", ", heads, ", kv_len, ", head_dim, "], got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), "attention: v must have k's shape ", k.sizes(), ", got ", v.sizes());
  TORCH_CHECK(kv_len >= 1, "attention: k and v need at least one key");
  TORCH_CHECK(q_len < (int64_t{1} << 31) && kv_len < (int64_t{1} << 31), "attention: sequence too long");
  TORCH_CHECK(variant >= 0 && variant <= videocascade::attention_forward_num_variants(),
              "attention: variant must be in [0, ", videocascade::attention_forward_num_variants(), "], got ",
              variant);

  const c10::cuda::CUDAGuard guard(q.device());
  // [B, Lq, H, D] memory viewed as [B, H, Lq, D]: the usual next step (transpose(1, 2).reshape(B, Lq, H * D))
  // is then a free view instead of a copy.
  torch::Tensor out = torch::empty({batch, q_len, heads, head_dim}, q.options()).transpose(1, 2);

  videocascade::AttentionFwdParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.q_batch_stride = stride_or_zero(q, 0);
  p.q_head_stride = stride_or_zero(q, 1);
  p.q_row_stride = stride_or_zero(q, 2);
  p.k_batch_stride = stride_or_zero(k, 0);
  p.k_head_stride = stride_or_zero(k, 1);
  p.k_row_stride = stride_or_zero(k, 2);
  p.v_batch_stride = stride_or_zero(v, 0);
  p.v_head_stride = stride_or_zero(v, 1);
  p.v_row_stride = stride_or_zero(v, 2);
  p.o_batch_stride = stride_or_zero(out, 0);
  p.o_head_stride = stride_or_zero(out, 1);
  p.o_row_stride = stride_or_zero(out, 2);
  p.batch = static_cast<int>(batch);
  p.heads = static_cast<int>(heads);
  p.q_len = static_cast<int>(q_len);
  p.kv_len = static_cast<int>(kv_len);
  p.head_dim = static_cast<int>(head_dim);
  p.softmax_scale = static_cast<float>(softmax_scale);
  p.dtype = q.scalar_type() == at::kBFloat16 ? videocascade::AttnDtype::kBFloat16 : videocascade::AttnDtype::kFloat16;

  if (key_mask.has_value()) {
    const torch::Tensor& m = *key_mask;
    TORCH_CHECK(m.device() == q.device(), "attention: key_mask is on ", m.device(), " but q is on ", q.device());
    TORCH_CHECK(m.scalar_type() == at::kBool || m.scalar_type() == at::kByte,
                "attention: key_mask must be bool (True = attend), got ", m.scalar_type());
    TORCH_CHECK(m.dim() == 3 && m.size(0) == batch && m.size(1) == heads && m.size(2) == kv_len,
                "attention: key_mask must be [batch, heads, kv_len] = [", batch, ", ", heads, ", ", kv_len,
                "] (expanded views are fine), got ", m.sizes());
    TORCH_CHECK(m.stride(2) == 1 || kv_len == 1, "attention: key_mask must be contiguous along kv_len");
    p.key_mask = static_cast<const uint8_t*>(m.data_ptr());
    p.mask_batch_stride = stride_or_zero(m, 0);
    p.mask_head_stride = stride_or_zero(m, 1);
  }

  if (const char* problem = videocascade::attention_forward_check(p)) {
    TORCH_CHECK(false, "attention: ", problem, " (q strides ", q.strides(), ", k strides ", k.strides(),
                ", v strides ", v.strides(), ")");
  }
  if (q_len == 0) return out;
  const cudaError_t err =
      videocascade::attention_forward(p, static_cast<int>(variant), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "attention: kernel launch failed: ", cudaGetErrorString(err));
  return out;
}

std::vector<std::string> variant_names() {
  std::vector<std::string> names;
  for (int i = 1; i <= videocascade::attention_forward_num_variants(); ++i) {
    names.emplace_back(videocascade::attention_forward_variant_name(i));
  }
  return names;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "VideoCascade flash-style attention forward (fp16/bf16, head_dim 64/128)";
  m.def("forward", &attention_forward, "out = softmax(q k^T * scale, keys masked) v; [B, H, L, D] tensors",
        pybind11::arg("q"), pybind11::arg("k"), pybind11::arg("v"), pybind11::arg("key_mask"),
        pybind11::arg("softmax_scale"), pybind11::arg("variant") = 0);
  m.def("variant_names", &variant_names, "tile-shape variants, index i + 1 for `variant`");
  m.def("default_variant", &videocascade::attention_forward_default_variant, pybind11::arg("head_dim"));
}
