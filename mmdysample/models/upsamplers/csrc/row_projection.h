// Copyright (c) mmdysample contributors. All rights reserved.
//
// DySample's 1x1 projection, one row of the input at a time.
//
// The fused forward kernel (dysample_cpu.cpp) predicts the offsets of a row
// where it samples it, so that no offset tensor is allocated (on a fresh
// page every call: page faults cost as much as the arithmetic here) and the
// input row is read while it is still in cache. The projection of a row is
// a small matrix product, (P x Cin) weights times (Cin x W) pixels, which
// BLAS libraries run slowly at these shapes (P of 16 to 64); the kernels
// below pack the row in tiles of kTile pixels and keep a block of outputs of
// a tile in registers.
//
// Channel layouts (the `project` function of offsets.py): output channel
// o * nb + kk of pixel j sums weight[o][c] * x[c * nb + kk][i][j] over the
// Cin input channels c, with nb = 1 for the 'lp' style and nb = s * s
// sub-pixels kk for 'pl' (the pixel-shuffled projection, computed on the
// un-shuffled input).
//
// Float32 on x86 CPUs with AVX2 and FMA takes an AVX2 path chosen at run
// time (the extension is built without -march flags); other types and CPUs,
// or set_simd(false), take a portable loop that computes the same sums.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define MMDYSAMPLE_X86 1
#endif

namespace dysample {

// Pixels per tile: three 8-float registers.
constexpr int64_t kTile = 24;

inline int64_t padded_width(int64_t w) {
  return (w + kTile - 1) / kTile * kTile;
}

// Copy pixels [j0, j0 + kTile) of row `i` of input channels c * nb + kk
// (c < cin) of one image (`img`, planes of HW) into `tile`, laid out
// [c][kTile] and zero-padded past W. A tile (24 KiB for 256 float
// channels) stays in the L1 cache while all outputs are computed from it.
template <typename scalar_t>
void pack_tile(const scalar_t* img, int64_t HW, int64_t W, int64_t i,
               int64_t j0, int64_t cin, int64_t nb, int64_t kk,
               scalar_t* tile) {
  const int64_t n = std::min(kTile, W - j0);
  for (int64_t c = 0; c < cin; ++c) {
    const scalar_t* src = img + (c * nb + kk) * HW + i * W + j0;
    scalar_t* dst = tile + c * kTile;
    // The channels are a plane apart, too many streams for the hardware
    // prefetcher: fetch the tile after next (the next row, past the end).
    __builtin_prefetch(src + 2 * kTile);
    __builtin_prefetch(src + 2 * kTile + 64 / sizeof(scalar_t));
    if (n == kTile) {
      std::memcpy(dst, src, kTile * sizeof(scalar_t));
    } else {
      std::memcpy(dst, src, n * sizeof(scalar_t));
      std::fill(dst + n, dst + kTile, scalar_t(0));
    }
  }
}

// Outputs per register block.
constexpr int64_t kBlockOut = 4;

// The weights of a projection in blocks, so that a block of outputs reads
// its weights as one stream (kBlockOut values per input channel): output o
// of the first P / kBlockOut * kBlockOut is at ((o / 4) * cin + c) * 4 +
// o % 4, each of the remaining ones a row of cin after them (see
// block_weights); either way a block or a single output starting at o
// starts at weights + o * cin. And the optional bias.
template <typename scalar_t>
struct Projection {
  const scalar_t* weights;  // P x cin values, blocked
  const scalar_t* bias;     // P, or nullptr
  int64_t cin, P;

  int64_t blocked() const { return P / kBlockOut * kBlockOut; }
  // The weights of the block (or single output) starting at output o.
  const scalar_t* of(int64_t o) const { return weights + o * cin; }
  // Weight of output o for input channel c.
  scalar_t at(int64_t o, int64_t c) const {
    return o < blocked() ? of(o - o % kBlockOut)[c * kBlockOut + o % kBlockOut]
                         : of(o)[c];
  }
};

// Lay out `w` (P x cin, row-major) as Projection::weights in `out`.
template <typename scalar_t>
void block_weights(const scalar_t* w, int64_t P, int64_t cin,
                   scalar_t* out) {
  const int64_t blocked = P / kBlockOut * kBlockOut;
  for (int64_t o = 0; o < blocked; ++o) {
    for (int64_t c = 0; c < cin; ++c) {
      out[((o / kBlockOut) * cin + c) * kBlockOut + o % kBlockOut] =
          w[o * cin + c];
    }
  }
  std::copy(w + blocked * cin, w + P * cin, out + blocked * cin);
}

// out[o * stride + q] = bias[o] + sum_c w[o][c] * tile[c][q], for all
// o < P and the kTile pixels q of a packed tile.
template <typename scalar_t>
void project_tile_portable(const scalar_t* tile,
                           const Projection<scalar_t>& proj, scalar_t* out,
                           int64_t stride) {
  for (int64_t o = 0; o < proj.P; ++o) {
    scalar_t acc[kTile];
    const scalar_t b = proj.bias != nullptr ? proj.bias[o] : scalar_t(0);
    for (int64_t q = 0; q < kTile; ++q) acc[q] = b;
    for (int64_t c = 0; c < proj.cin; ++c) {
      const scalar_t w = proj.at(o, c);
      const scalar_t* xc = tile + c * kTile;
      for (int64_t q = 0; q < kTile; ++q) acc[q] += w * xc[q];
    }
    std::copy(acc, acc + kTile, out + o * stride);
  }
}

// 1 / (1 + exp(-v)), in place over n values.
template <typename scalar_t>
void sigmoid_portable(scalar_t* v, int64_t n) {
  for (int64_t q = 0; q < n; ++q) {
    v[q] = scalar_t(1) / (scalar_t(1) + std::exp(-v[q]));
  }
}

#ifdef MMDYSAMPLE_X86

inline bool& simd_allowed() {
  static bool allowed = true;
  return allowed;
}

// Whether the AVX2 paths run: the CPU has AVX2 and FMA, and set_simd has
// not forbidden them.
inline bool use_avx2() {
  static const bool has =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has && simd_allowed();
}

inline void set_simd(bool allowed) { simd_allowed() = allowed; }

// OB outputs of one tile, in 3 * OB accumulators (the loops over them
// must be unrolled for the accumulators to stay in registers).
template <int OB>
__attribute__((target("avx2,fma"))) inline void project_block_avx2(
    const float* tile, const Projection<float>& proj, int64_t o0, float* out,
    int64_t stride) {
  constexpr int kVecs = kTile / 8;
  __m256 acc[OB][kVecs];
#pragma GCC unroll 4
  for (int o = 0; o < OB; ++o) {
    const __m256 b =
        _mm256_set1_ps(proj.bias != nullptr ? proj.bias[o0 + o] : 0.f);
#pragma GCC unroll 3
    for (int v = 0; v < kVecs; ++v) acc[o][v] = b;
  }
  for (int64_t c = 0; c < proj.cin; ++c) {
    __m256 xv[kVecs];
#pragma GCC unroll 3
    for (int v = 0; v < kVecs; ++v) {
      xv[v] = _mm256_loadu_ps(tile + c * kTile + 8 * v);
    }
    const float* w = proj.of(o0) + c * OB;
#pragma GCC unroll 4
    for (int o = 0; o < OB; ++o) {
      const __m256 wv = _mm256_broadcast_ss(w + o);
#pragma GCC unroll 3
      for (int v = 0; v < kVecs; ++v) {
        acc[o][v] = _mm256_fmadd_ps(wv, xv[v], acc[o][v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 3
    for (int v = 0; v < kVecs; ++v) {
      _mm256_storeu_ps(out + (o0 + o) * stride + 8 * v, acc[o][v]);
    }
  }
}

// Blocks of 4 outputs: 12 accumulators, three pixel registers and a
// weight fit the 16 AVX2 registers (measured: 236M multiply-adds in 3.1 ms
// on 2 cores, against 5.3 ms for two-register tiles).
__attribute__((target("avx2,fma"))) inline void project_tile_avx2(
    const float* tile, const Projection<float>& proj, float* out,
    int64_t stride) {
  int64_t o = 0;
  for (; o < proj.blocked(); o += kBlockOut) {
    project_block_avx2<kBlockOut>(tile, proj, o, out, stride);
  }
  for (; o < proj.P; ++o) project_block_avx2<1>(tile, proj, o, out, stride);
}

// exp for float32, Cephes' polynomial on [-ln2 / 2, ln2 / 2] (about 1 ulp);
// NaN stays NaN, large arguments saturate.
__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
  x = _mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x);
  const __m256 n = _mm256_round_ps(
      _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r),
                      _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  // 2^n in two factors, so that n = 128 (x near 88.7) does not overflow
  // the exponent field.
  const __m256i half = _mm256_srai_epi32(_mm256_cvtps_epi32(n), 1);
  const __m256i rest = _mm256_sub_epi32(_mm256_cvtps_epi32(n), half);
  const __m256 two_half = _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 two_rest = _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_add_epi32(rest, _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, two_half), two_rest);
}

__attribute__((target("avx2,fma"))) inline void sigmoid_avx2(float* v,
                                                             int64_t n) {
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t q = 0;
  for (; q + 8 <= n; q += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(),
                                            _mm256_loadu_ps(v + q)));
    _mm256_storeu_ps(v + q, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
  sigmoid_portable(v + q, n - q);
}

#else

inline bool use_avx2() { return false; }
inline void set_simd(bool) {}

#endif  // MMDYSAMPLE_X86

template <typename scalar_t>
void project_tile(const scalar_t* tile, const Projection<scalar_t>& proj,
                  scalar_t* out, int64_t stride) {
  project_tile_portable(tile, proj, out, stride);
}

template <typename scalar_t>
void sigmoid_inplace(scalar_t* v, int64_t n) {
  sigmoid_portable(v, n);
}

#ifdef MMDYSAMPLE_X86
template <>
inline void project_tile<float>(const float* tile,
                                const Projection<float>& proj, float* out,
                                int64_t stride) {
  if (use_avx2()) {
    project_tile_avx2(tile, proj, out, stride);
  } else {
    project_tile_portable(tile, proj, out, stride);
  }
}

template <>
inline void sigmoid_inplace<float>(float* v, int64_t n) {
  if (use_avx2()) {
    sigmoid_avx2(v, n);
  } else {
    sigmoid_portable(v, n);
  }
}
#endif  // MMDYSAMPLE_X86

// Row `i` of the projection: out[(o * nb + kk) * stride + j] for all o, kk
// and j < padded_width(W), through `tile` (cin * kTile values).
template <typename scalar_t>
void project_row(const scalar_t* img, int64_t HW, int64_t W, int64_t i,
                 int64_t nb, const Projection<scalar_t>& proj,
                 scalar_t* tile, scalar_t* out, int64_t stride) {
  for (int64_t j0 = 0; j0 < W; j0 += kTile) {
    for (int64_t kk = 0; kk < nb; ++kk) {
      pack_tile<scalar_t>(img, HW, W, i, j0, proj.cin, nb, kk, tile);
      project_tile<scalar_t>(tile, proj, out + kk * stride + j0,
                             nb * stride);
    }
  }
}

}  // namespace dysample
