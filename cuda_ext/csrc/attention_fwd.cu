// Flash-style forward attention on tensor cores (mma.sync m16n8k16, fp32 accumulation), sm_80 and newer.
//
// One thread block computes kBlockM query rows of one (batch, head):
//   * Q tile -> shared memory (cp.async) -> registers (ldmatrix), kept there for the whole key loop.
//   * K/V tiles of kBlockN keys stream through two shared-memory buffers: tile j+1 is in flight (cp.async)
//     while tile j is used, so global loads overlap the tensor-core work.
//   * S = Q K^T in fp32; online softmax in the log2 domain with the softmax scale folded into one FMA
//     (exp2(s * scale * log2 e - m * scale * log2 e)); P is rounded to fp16/bf16 and fed straight from the
//     S accumulator registers into the P V product (the m16n8 accumulator layout is the A operand layout).
//   * O is divided by the row sums, staged through shared memory, and written with 16-byte stores.
// Each warp owns kMTiles * 16 consecutive query rows, so softmax statistics never leave the warp (a row
// lives in the 4 threads of a quad: two shuffles reduce it).
//
// Tails: query rows and keys past the end are zero-filled by cp.async (src-size 0) and never stored;
// scores of keys past kv_len (or masked by the key mask) are set to -inf before the row max.
// Shared memory tiles are swizzled (16-byte chunk index XOR row % 8) so ldmatrix reads of 8 rows at the
// same column hit 8 different bank groups.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "attention_fwd.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "attention_fwd.cu needs sm_80 or newer (cp.async, ldmatrix, bf16 mma.sync)"
#endif

namespace videocascade {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------------------------------------------------
// PTX wrappers
// ---------------------------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

// 16-byte global -> shared copy that bypasses L1; copies zeros when !valid (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const int src_size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(src_size)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem))
               : "memory");
}

// Same, transposed: each thread receives a column pair instead of a row pair (the V operand of P V).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem))
               : "memory");
}

template <typename Elem>
struct ElemOps;

template <>
struct ElemOps<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  // D += A B for a 16x16 (A, row-major) by 16x8 (B, column-major) tile, fp32 accumulators.
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct ElemOps<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// ---------------------------------------------------------------------------------------------------------
// Shared-memory tiles: rows of kHeadDim elements, i.e. kHeadDim / 8 chunks of 16 bytes, swizzled.
// ---------------------------------------------------------------------------------------------------------

template <int kHeadDim>
__device__ __forceinline__ int tile_offset(int row, int chunk) {
  return row * kHeadDim + ((chunk ^ (row & 7)) << 3);
}

// Copy rows [0, kRows) of a global tile (row stride `row_stride`) into shared memory; rows at or past
// `rows_valid` become zeros. All threads of the block take part. Every thread keeps one chunk column and
// walks down the rows with a pointer increment: precomputed per-row 64-bit addresses would cost two
// registers each, and the big variants have none to spare.
template <int kRows, int kHeadDim, int kThreads, typename Elem>
__device__ __forceinline__ void load_tile_async(Elem* smem, const Elem* gmem, int64_t row_stride, int rows_valid,
                                                int tid) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kRowStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRows % kRowStep == 0, "tile chunks must divide evenly");
  static_assert(kRowStep % 8 == 0, "the swizzle (row % 8) must repeat every kRowStep rows");
  const int row0 = tid / kChunks;
  const int chunk = tid % kChunks;
  Elem* dst = smem + tile_offset<kHeadDim>(row0, chunk);
  const Elem* src = gmem + row0 * row_stride + chunk * 8;
  const int64_t src_step = kRowStep * row_stride;
#pragma unroll
  for (int i = 0; i < kRows / kRowStep; ++i) {
    const bool valid = row0 + i * kRowStep < rows_valid;
    // An invalid row still needs a legal address for the instruction; the tile start is one.
    cp_async_16(dst + i * kRowStep * kHeadDim, valid ? src : gmem, valid);
    src += src_step;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The kernel
// ---------------------------------------------------------------------------------------------------------

template <int kHeadDim, int kBlockN, int kWarps, int kMTiles>
struct TileShape {
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBlockM = kWarpRows * kWarps;
  static constexpr int kChunks = kHeadDim / 8;    // 16-byte chunks per row
  static constexpr int kKSlices = kHeadDim / 16;  // k steps of Q K^T
  static constexpr int kNTiles = kBlockN / 8;     // 8-key column tiles of S
  static constexpr int kPSlices = kBlockN / 16;   // k steps of P V
  static constexpr int kDTiles = kHeadDim / 8;    // 8-wide column tiles of O
  // Q tile, then two K buffers, then two V buffers.
  static constexpr int kSmemElems = (kBlockM + 4 * kBlockN) * kHeadDim;
  // Q fragments take kMTiles * kHeadDim / 4 registers per thread: keep them when that is at most 32,
  // otherwise re-read them from shared memory at every k step (the O accumulators need the registers).
  static constexpr bool kQInRegs = kMTiles * kHeadDim <= 128;
  static_assert(kHeadDim % 16 == 0 && kBlockN % 16 == 0, "tiles are made of 16x16 MMA steps");
};

template <int kHeadDim, int kBlockN, int kWarps, int kMTiles, typename Elem>
__global__ void __launch_bounds__(kWarps * 32) attention_fwd_kernel(const AttentionFwdParams p) {
  using Shape = TileShape<kHeadDim, kBlockN, kWarps, kMTiles>;
  using Ops = ElemOps<Elem>;
  constexpr int kThreads = Shape::kThreads;
  constexpr int kBlockM = Shape::kBlockM;
  constexpr int kChunks = Shape::kChunks;
  constexpr int kKSlices = Shape::kKSlices;
  constexpr int kNTiles = Shape::kNTiles;
  constexpr int kPSlices = Shape::kPSlices;
  constexpr int kDTiles = Shape::kDTiles;

  extern __shared__ uint4 smem_u4[];  // uint4: 16-byte alignment for cp.async / ldmatrix / vector stores
  Elem* s_q = reinterpret_cast<Elem*>(smem_u4);
  Elem* s_k = s_q + kBlockM * kHeadDim;      // [2][kBlockN][kHeadDim]
  Elem* s_v = s_k + 2 * kBlockN * kHeadDim;  // [2][kBlockN][kHeadDim]

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int quad_row = lane / 4;  // "groupID" of the MMA fragment layouts: row within an 8-row half
  const int quad_col = lane % 4;  // "threadID_in_group": which column pair
  const int ld_matrix = lane / 8;  // which of the four 8x8 matrices this lane addresses in ldmatrix.x4
  const int ld_row = lane % 8;     // which row of that matrix

  const int q_start = blockIdx.x * kBlockM;
  const int head = blockIdx.y;
  const int batch = blockIdx.z;

  const Elem* q_base = static_cast<const Elem*>(p.q) + batch * p.q_batch_stride + head * p.q_head_stride;
  const Elem* k_base = static_cast<const Elem*>(p.k) + batch * p.k_batch_stride + head * p.k_head_stride;
  const Elem* v_base = static_cast<const Elem*>(p.v) + batch * p.v_batch_stride + head * p.v_head_stride;
  Elem* o_base = static_cast<Elem*>(p.out) + batch * p.o_batch_stride + head * p.o_head_stride;
  const uint8_t* mask_base =
      p.key_mask == nullptr ? nullptr : p.key_mask + batch * p.mask_batch_stride + head * p.mask_head_stride;

  const int n_blocks = (p.kv_len + kBlockN - 1) / kBlockN;

  auto load_kv = [&](int block, int buffer) {
    const int n_start = block * kBlockN;
    load_tile_async<kBlockN, kHeadDim, kThreads>(s_k + buffer * kBlockN * kHeadDim,
                                                 k_base + n_start * p.k_row_stride, p.k_row_stride,
                                                 p.kv_len - n_start, tid);
    load_tile_async<kBlockN, kHeadDim, kThreads>(s_v + buffer * kBlockN * kHeadDim,
                                                 v_base + n_start * p.v_row_stride, p.v_row_stride,
                                                 p.kv_len - n_start, tid);
  };

  // Prologue: Q (group 0) and the first K/V tile (group 1) in flight; wait for Q only.
  load_tile_async<kBlockM, kHeadDim, kThreads>(s_q, q_base + q_start * p.q_row_stride, p.q_row_stride,
                                               p.q_len - q_start, tid);
  cp_async_commit();
  load_kv(0, 0);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();

  // Q fragments (A operand, 16x16 per k step): matrices 0..3 = (rows 0-7, cols 0-7), (rows 8-15, cols 0-7),
  // (rows 0-7, cols 8-15), (rows 8-15, cols 8-15), which is the register order of the m16n8k16 A operand.
  const int warp_row0 = warp * Shape::kWarpRows;
  auto load_q_frag = [&](uint32_t(&frag)[4], int mt, int ks) {
    const int row = warp_row0 + mt * 16 + ld_row + (ld_matrix & 1) * 8;
    ldmatrix_x4(frag, s_q + tile_offset<kHeadDim>(row, ks * 2 + (ld_matrix >> 1)));
  };
  constexpr bool kQInRegs = Shape::kQInRegs;
  uint32_t q_frag[kQInRegs ? kMTiles : 1][kQInRegs ? kKSlices : 1][4];
  if constexpr (kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int ks = 0; ks < kKSlices; ++ks) load_q_frag(q_frag[mt][ks], mt, ks);
    }
  }

  // Per thread: rows quad_row and quad_row + 8 of each m-tile ([mt][0] and [mt][1]).
  float o_acc[kMTiles][kDTiles][4];
  float row_max[kMTiles][2];
  float row_sum[kMTiles][2];  // this thread's partial sums; the quad is reduced once at the end
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o_acc[mt][dt][e] = 0.f;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.f;
    }
  }
  const float scale_log2 = p.softmax_scale * kLog2e;

  for (int block = 0; block < n_blocks; ++block) {
    const int buffer = block & 1;
    // Refill the other buffer with the next tile; everyone finished reading it at the end of the last
    // iteration. The commit is unconditional so that "all but the newest group done" means "this tile done".
    if (block + 1 < n_blocks) load_kv(block + 1, buffer ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const Elem* k_tile = s_k + buffer * kBlockN * kHeadDim;
    const Elem* v_tile = s_v + buffer * kBlockN * kHeadDim;

    // ---- S = Q K^T (raw scores, fp32) ----
    float s[kMTiles][kNTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
      }
    }
#pragma unroll
    for (int ks = 0; ks < kKSlices; ++ks) {
      uint32_t q_step[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int e = 0; e < 4; ++e) q_step[mt][e] = q_frag[mt][ks][e];
        } else {
          load_q_frag(q_step[mt], mt, ks);
        }
      }
#pragma unroll
      for (int np = 0; np < kNTiles / 2; ++np) {
        // B operand (k = head_dim, n = key) is K stored row-major by key, i.e. column-major B: a plain
        // ldmatrix gives it. Matrices: (keys 0-7, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 0-7),
        // (keys 8-15, d 8-15) -> {b0, b1} of key tile 2np, then of key tile 2np + 1.
        uint32_t k_frag[4];
        const int row = np * 16 + ld_row + (ld_matrix >> 1) * 8;
        ldmatrix_x4(k_frag, k_tile + tile_offset<kHeadDim>(row, ks * 2 + (ld_matrix & 1)));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          Ops::mma(s[mt][2 * np], q_step[mt], k_frag[0], k_frag[1]);
          Ops::mma(s[mt][2 * np + 1], q_step[mt], k_frag[2], k_frag[3]);
        }
      }
    }

    // ---- keys past the end, and masked keys, get -inf ----
    const int n_start = block * kBlockN;
    if (n_start + kBlockN > p.kv_len || mask_base != nullptr) {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = n_start + nt * 8 + quad_col * 2 + e;
          const bool keep = col < p.kv_len && (mask_base == nullptr || mask_base[col] != 0);
          if (!keep) {
#pragma unroll
            for (int mt = 0; mt < kMTiles; ++mt) {
              s[mt][nt][e] = -INFINITY;      // row quad_row
              s[mt][nt][e + 2] = -INFINITY;  // row quad_row + 8
            }
          }
        }
      }
    }

    // ---- online softmax; P packed as the A operand of P V ----
    uint32_t p_frag[kMTiles][kPSlices][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      float scaled_max[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float m = row_max[mt][r];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) m = fmaxf(m, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
        // A row with no key kept so far has m = -inf: subtract 0 instead so exp2 gives 0, not NaN.
        scaled_max[r] = m == -INFINITY ? 0.f : m * scale_log2;
        // row_max = -inf (first tile) gives alpha = exp2(-inf) = 0, and o_acc / row_sum are 0 anyway.
        const float alpha = exp2f(row_max[mt][r] * scale_log2 - scaled_max[r]);
        row_max[mt][r] = m;
        row_sum[mt][r] *= alpha;
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          o_acc[mt][dt][2 * r] *= alpha;
          o_acc[mt][dt][2 * r + 1] *= alpha;
        }
      }
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        const float p0 = exp2f(fmaf(s[mt][nt][0], scale_log2, -scaled_max[0]));
        const float p1 = exp2f(fmaf(s[mt][nt][1], scale_log2, -scaled_max[0]));
        const float p2 = exp2f(fmaf(s[mt][nt][2], scale_log2, -scaled_max[1]));
        const float p3 = exp2f(fmaf(s[mt][nt][3], scale_log2, -scaled_max[1]));
        row_sum[mt][0] += p0 + p1;
        row_sum[mt][1] += p2 + p3;
        // Key tile nt is columns 8 * (nt % 2) .. +7 of k step nt / 2: registers {a0, a1} for even nt,
        // {a2, a3} for odd nt; a0/a2 hold row quad_row, a1/a3 row quad_row + 8.
        p_frag[mt][nt / 2][(nt & 1) * 2 + 0] = Ops::pack(p0, p1);
        p_frag[mt][nt / 2][(nt & 1) * 2 + 1] = Ops::pack(p2, p3);
      }
    }

    // ---- O += P V ----
#pragma unroll
    for (int kk = 0; kk < kPSlices; ++kk) {
#pragma unroll
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        // B operand (k = key, n = head_dim) is V stored row-major by key: ldmatrix.trans. Matrices:
        // (keys 0-7, d 0-7), (keys 8-15, d 0-7), (keys 0-7, d 8-15), (keys 8-15, d 8-15) -> {b0, b1} of
        // d tile 2dp, then of d tile 2dp + 1.
        uint32_t v_frag[4];
        const int row = kk * 16 + ld_row + (ld_matrix & 1) * 8;
        ldmatrix_x4_trans(v_frag, v_tile + tile_offset<kHeadDim>(row, dp * 2 + (ld_matrix >> 1)));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          Ops::mma(o_acc[mt][2 * dp], p_frag[mt][kk], v_frag[0], v_frag[1]);
          Ops::mma(o_acc[mt][2 * dp + 1], p_frag[mt][kk], v_frag[2], v_frag[3]);
        }
      }
    }
    __syncthreads();  // this buffer is refilled by the next iteration's load
  }

  // ---- epilogue: normalise, stage this warp's rows in its own part of s_q, store 16 bytes per thread ----
  // Only this warp ever read rows [warp_row0, warp_row0 + kWarpRows) of s_q, so a warp barrier suffices.
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float total = row_sum[mt][r];
      total += __shfl_xor_sync(0xffffffffu, total, 1);
      total += __shfl_xor_sync(0xffffffffu, total, 2);
      // A row whose keys are all masked has total 0: it outputs zeros (as PyTorch's SDPA does).
      const float inv = total > 0.f ? 1.f / total : 0.f;
      const int row = warp_row0 + mt * 16 + quad_row + r * 8;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        *reinterpret_cast<uint32_t*>(s_q + tile_offset<kHeadDim>(row, dt) + quad_col * 2) =
            Ops::pack(o_acc[mt][dt][2 * r] * inv, o_acc[mt][dt][2 * r + 1] * inv);
      }
    }
  }
  __syncwarp();
  constexpr int kWarpChunks = Shape::kWarpRows * kChunks;
  static_assert(kWarpChunks % 32 == 0, "output rows must divide evenly among the lanes");
#pragma unroll
  for (int i = 0; i < kWarpChunks / 32; ++i) {
    const int idx = lane + i * 32;
    const int row = warp_row0 + idx / kChunks;
    const int chunk = idx % kChunks;
    const int q_row = q_start + row;
    if (q_row < p.q_len) {
      *reinterpret_cast<uint4*>(o_base + q_row * p.o_row_stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(s_q + tile_offset<kHeadDim>(row, chunk));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------------------

template <int kHeadDim, int kBlockN, int kWarps, int kMTiles, typename Elem>
cudaError_t launch(const AttentionFwdParams& p, cudaStream_t stream) {
  using Shape = TileShape<kHeadDim, kBlockN, kWarps, kMTiles>;
  auto kernel = attention_fwd_kernel<kHeadDim, kBlockN, kWarps, kMTiles, Elem>;
  const int smem_bytes = Shape::kSmemElems * static_cast<int>(sizeof(Elem));
  if (smem_bytes > 48 * 1024) {
    // Above 48 KB a block gets dynamic shared memory only after opting in.
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
    if (err != cudaSuccess) return err;
  }
  const dim3 grid((p.q_len + Shape::kBlockM - 1) / Shape::kBlockM, p.heads, p.batch);
  kernel<<<grid, Shape::kThreads, smem_bytes, stream>>>(p);
  return cudaGetLastError();
}

struct Variant {
  const char* name;
  int warps, m_tiles, block_n;
};

// Index 1..N; the numbers are part of the benchmark's output, so append rather than reorder.
constexpr Variant kVariants[] = {
    {nullptr, 0, 0, 0},       // 0: default, see attention_forward_default_variant
    {"w4_m1_n64", 4, 1, 64},  // 64 query rows per block
    {"w8_m1_n64", 8, 1, 64},  // 128 rows, K/V tiles shared by 8 warps
    {"w4_m2_n64", 4, 2, 64},  // 128 rows, each K/V fragment feeds two m-tiles (half the ldmatrix traffic)
    {"w4_m2_n32", 4, 2, 32},  // as above with a smaller S tile, for head_dim 128's register budget
};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]) - 1;

template <int kHeadDim, typename Elem>
cudaError_t launch_variant(const AttentionFwdParams& p, int variant, cudaStream_t stream) {
  switch (variant) {
    case 1:
      return launch<kHeadDim, 64, 4, 1, Elem>(p, stream);
    case 2:
      return launch<kHeadDim, 64, 8, 1, Elem>(p, stream);
    case 3:
      return launch<kHeadDim, 64, 4, 2, Elem>(p, stream);
    case 4:
      return launch<kHeadDim, 32, 4, 2, Elem>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

bool strides_ok(int64_t a, int64_t b, int64_t c) { return a % 8 == 0 && b % 8 == 0 && c % 8 == 0; }

}  // namespace

const char* attention_forward_check(const AttentionFwdParams& p) {
  if (p.head_dim != 64 && p.head_dim != 128) return "head_dim must be 64 or 128";
  if (p.dtype != AttnDtype::kFloat16 && p.dtype != AttnDtype::kBFloat16) return "dtype must be fp16 or bf16";
  if (p.batch < 1 || p.heads < 1) return "batch and heads must be at least 1";
  if (p.batch > 65535 || p.heads > 65535) return "batch and heads must each be at most 65535";
  if (p.q_len < 0) return "q_len must not be negative";
  if (p.kv_len < 1) return "kv_len must be at least 1";
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.out == nullptr) return "null tensor pointer";
  if (!aligned16(p.q) || !aligned16(p.k) || !aligned16(p.v) || !aligned16(p.out)) {
    return "q, k, v and out must start on a 16-byte boundary";
  }
  if (!strides_ok(p.q_batch_stride, p.q_head_stride, p.q_row_stride) ||
      !strides_ok(p.k_batch_stride, p.k_head_stride, p.k_row_stride) ||
      !strides_ok(p.v_batch_stride, p.v_head_stride, p.v_row_stride) ||
      !strides_ok(p.o_batch_stride, p.o_head_stride, p.o_row_stride)) {
    return "batch, head and row strides must be multiples of 8 elements (16 bytes)";
  }
  if (p.softmax_scale <= 0.f) return "softmax_scale must be positive";
  return nullptr;
}

cudaError_t attention_forward(const AttentionFwdParams& p, int variant, cudaStream_t stream) {
  if (attention_forward_check(p) != nullptr) return cudaErrorInvalidValue;
  if (variant == 0) variant = attention_forward_default_variant(p.head_dim);
  if (variant < 1 || variant > kNumVariants) return cudaErrorInvalidValue;
  if (p.q_len == 0) return cudaSuccess;
  const bool bf16 = p.dtype == AttnDtype::kBFloat16;
  if (p.head_dim == 64) {
    return bf16 ? launch_variant<64, __nv_bfloat16>(p, variant, stream)
                : launch_variant<64, __half>(p, variant, stream);
  }
  return bf16 ? launch_variant<128, __nv_bfloat16>(p, variant, stream)
              : launch_variant<128, __half>(p, variant, stream);
}

int attention_forward_num_variants() { return kNumVariants; }

const char* attention_forward_variant_name(int variant) {
  if (variant < 1 || variant > kNumVariants) return nullptr;
  return kVariants[variant].name;
}

// Untuned guesses until a GPU session measures them (bench/attention.py times every variant).
int attention_forward_default_variant(int head_dim) { return head_dim == 64 ? 3 : 2; }

}  // namespace videocascade
