// Copyright (c) mmdysample contributors. All rights reserved.
//
// DySample's sampling step on the CPU, fused.
//
// The readable formulation (mmdysample/models/upsamplers/sampling.py) turns
// offsets into a normalised grid, pixel-shuffles it and calls grid_sample;
// grid_sample alone costs as much as a whole bilinear upsampling. Here the
// bilinear taps of every output pixel are computed once per row, straight
// from the offsets in pixel units, and reused for all channels of a group,
// which then run as a plain, cache-friendly loop over the output row.
//
// Semantics are grid_sample's with padding_mode='border' and
// align_corners=False: output pixel (oy, ox) = (i*s + si, j*s + sj) of group
// gi reads the input at (i + off_y, j + off_x) in index space (pixel k has
// its centre at k), clamped to [0, size - 1]; the gradient of a clamped
// coordinate is zero.
//
// The backward pass may also take the layer's raw projection (as
// forward_fused saves it), so that the scope arithmetic of DySample (paper
// eq. 4 and 5) needs no tensors of its own: offset = raw * scale [* dynamic scope] + init, with `init` one value
// per offset channel (the initial positions) and the dynamic scope factors
// sigmoid(logit) stored as a second half of `off`'s channels. The gradient
// is then returned for `raw` and the scope factors (or their logits).
//
// forward_fused runs the whole layer: each input row's offsets are
// projected (row_projection.h), scoped and sampled by one task, so the
// forward pass allocates only its output (and, for training, the raw
// projection that backward takes).
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "row_projection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

// Where the offsets of one image come from, and how they are scoped.
// Offset channel c (of 2*G*s*s, x before y) at pixel p is
//   raw[c][p] * raw[2*G*s*s + c][p] * scale + init[c]  (dyscope)
//   raw[c][p] * scale + init[c]                        (otherwise)
// with init == nullptr meaning zeros; the plain contract is scale 1, no init.
template <typename scalar_t>
struct Offsets {
  const scalar_t* raw;
  const scalar_t* init;
  scalar_t scale;
  bool dyscope;
  int64_t gss, HW;
  // With a dynamic scope: whether the gradient of a scope factor f is to be
  // returned for its logit (times f * (1 - f)) rather than for f itself.
  bool logits;

  // First channel of image n; the raw tensor holds 2 (or 4) * gss channels.
  const scalar_t* image(int64_t n) const {
    return raw + n * (dyscope ? 4 : 2) * gss * HW;
  }
  // The scoped offset of channel `c` at plane offset `pos` (c * HW + pixel).
  scalar_t value(const scalar_t* img, int64_t c, int64_t pos) const {
    scalar_t v = img[pos];
    if (dyscope) v = v * img[2 * gss * HW + pos];
    v = v * scale;
    return init != nullptr ? v + init[c] : v;
  }
};

// Bilinear taps of one output row, as arrays (cheap to stream): the top-left
// input pixel `idx`, the fractions `ax`, `ay`, and whether each coordinate
// escaped clamping (`mx`, `my`, for the gradient). The other three taps are
// idx + sx, idx + sy and idx + sx + sy: a coordinate clamped to the last
// pixel is expressed as (size - 2, fraction 1), so no tap leaves the map.
template <typename scalar_t>
struct RowTaps {
  std::vector<int32_t> idx;  // H * W < 2^31 (checked)
  std::vector<scalar_t> ax, ay, mx, my;
  explicit RowTaps(int64_t n) : idx(n), ax(n), ay(n), mx(n), my(n) {}
};

// grid_sample's border clamping: the borders themselves count as clamped
// (zero gradient); comparisons are written so that NaN maps to 0.
template <typename scalar_t>
inline scalar_t clamp_coord(scalar_t v, int64_t size, scalar_t* mask) {
  const scalar_t hi = static_cast<scalar_t>(size - 1);
  if (!(v > 0)) {
    *mask = scalar_t(0);
    return scalar_t(0);
  }
  if (v >= hi) {
    *mask = scalar_t(0);
    return hi;
  }
  *mask = scalar_t(1);
  return v;
}

// Split a clamped coordinate into a cell start and a fraction in [0, 1].
template <typename scalar_t>
inline int64_t cell(scalar_t v, int64_t size, scalar_t* frac) {
  if (size == 1) {
    *frac = scalar_t(0);
    return 0;
  }
  int64_t v0 = static_cast<int64_t>(v);  // v >= 0: truncation == floor
  if (v0 > size - 2) v0 = size - 2;      // v == size - 1
  *frac = v - static_cast<scalar_t>(v0);
  return v0;
}

// The taps of output pixel `ox` of a row, sampling low-resolution pixel
// (i, j) moved by (dx, dy).
template <typename scalar_t>
inline void set_tap(RowTaps<scalar_t>* taps, int64_t ox, int64_t i,
                    int64_t j, scalar_t dx, scalar_t dy, int64_t H,
                    int64_t W) {
  const scalar_t px = clamp_coord<scalar_t>(j + dx, W, &taps->mx[ox]);
  const scalar_t py = clamp_coord<scalar_t>(i + dy, H, &taps->my[ox]);
  const int64_t x0 = cell<scalar_t>(px, W, &taps->ax[ox]);
  const int64_t y0 = cell<scalar_t>(py, H, &taps->ay[ox]);
  taps->idx[ox] = static_cast<int32_t>(y0 * W + x0);
}

template <typename scalar_t>
void row_taps(const Offsets<scalar_t>& off, int64_t n, int64_t gi,
              int64_t oy, int64_t H, int64_t W, int64_t s,
              RowTaps<scalar_t>* taps) {
  const int64_t HW = H * W, gss = off.gss;
  const int64_t i = oy / s, si = oy % s;
  const scalar_t* img = off.image(n);
  for (int64_t j = 0, ox = 0; j < W; ++j) {
    for (int64_t sj = 0; sj < s; ++sj, ++ox) {
      const int64_t c = (gi * s + si) * s + sj;
      const int64_t pos = c * HW + i * W + j;
      set_tap<scalar_t>(taps, ox, i, j, off.value(img, c, pos),
                        off.value(img, gss + c, gss * HW + pos), H, W);
    }
  }
}

// Channels are processed `kBlock` at a time so each row's taps are loaded
// once per block rather than once per channel (8 measured 3-5 % faster than
// 4 at the paper's shape).
constexpr int64_t kBlock = 8;

template <typename scalar_t>
__attribute__((always_inline)) inline scalar_t lerp4(const scalar_t* in, int64_t k, int64_t sx, int64_t sy,
                      scalar_t ax, scalar_t ay) {
  const scalar_t top = in[k] + ax * (in[k + sx] - in[k]);
  const scalar_t bot = in[k + sy] + ax * (in[k + sy + sx] - in[k + sy]);
  return top + ay * (bot - top);
}

// Output row `oy` of the cg channels of one group, from the row's taps;
// `plane0` is the group's first (n * C + channel) plane.
template <typename scalar_t>
__attribute__((always_inline)) inline void sample_row_impl(
    const scalar_t* x, const RowTaps<scalar_t>& taps,
                scalar_t* out, int64_t plane0, int64_t cg, int64_t oy,
                int64_t H, int64_t W, int64_t s) {
  const int64_t OW = W * s, HW = H * W, OHW = HW * s * s;
  const int64_t sx = W > 1 ? 1 : 0, sy = H > 1 ? W : 0;
  const int32_t* idx = taps.idx.data();
  const scalar_t* ax = taps.ax.data();
  const scalar_t* ay = taps.ay.data();
  int64_t c = 0;
  for (; c + kBlock <= cg; c += kBlock) {
    const scalar_t* in[kBlock];
    scalar_t* o[kBlock];
    for (int64_t q = 0; q < kBlock; ++q) {
      in[q] = x + (plane0 + c + q) * HW;
      o[q] = out + (plane0 + c + q) * OHW + oy * OW;
    }
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t k = idx[ox];
      const scalar_t fx = ax[ox], fy = ay[ox];
#pragma GCC unroll 8
      for (int64_t q = 0; q < kBlock; ++q) {
        o[q][ox] = lerp4(in[q], k, sx, sy, fx, fy);
      }
    }
  }
  for (; c < cg; ++c) {
    const scalar_t* in = x + (plane0 + c) * HW;
    scalar_t* o = out + (plane0 + c) * OHW + oy * OW;
    for (int64_t ox = 0; ox < OW; ++ox) {
      o[ox] = lerp4(in, idx[ox], sx, sy, ax[ox], ay[ox]);
    }
  }
}

template <typename scalar_t>
void sample_row(const scalar_t* x, const RowTaps<scalar_t>& taps,
                scalar_t* out, int64_t plane0, int64_t cg, int64_t oy,
                int64_t H, int64_t W, int64_t s) {
  sample_row_impl<scalar_t>(x, taps, out, plane0, cg, oy, H, W, s);
}

#ifdef MMDYSAMPLE_X86
// The same loop compiled for AVX2 and FMA: the three interpolation steps
// become fused multiply-adds (scalar ones: the taps are gathers, which AVX2
// runs slower than scalar loads on the CPUs measured).
__attribute__((target("avx2,fma"))) void sample_row_fma(
    const float* x, const RowTaps<float>& taps, float* out, int64_t plane0,
    int64_t cg, int64_t oy, int64_t H, int64_t W, int64_t s) {
  sample_row_impl<float>(x, taps, out, plane0, cg, oy, H, W, s);
}

template <>
void sample_row<float>(const float* x, const RowTaps<float>& taps,
                       float* out, int64_t plane0, int64_t cg, int64_t oy,
                       int64_t H, int64_t W, int64_t s) {
  if (dysample::use_avx2()) {
    sample_row_fma(x, taps, out, plane0, cg, oy, H, W, s);
  } else {
    sample_row_impl<float>(x, taps, out, plane0, cg, oy, H, W, s);
  }
}
#endif

template <typename scalar_t>
void forward_impl(const scalar_t* x, const Offsets<scalar_t>& off,
                  scalar_t* out, int64_t N, int64_t C, int64_t H, int64_t W,
                  int64_t s, int64_t G) {
  const int64_t cg = C / G, OH = H * s, OW = W * s;
  at::parallel_for(0, N * G * OH, 1, [&](int64_t begin, int64_t end) {
    RowTaps<scalar_t> taps(OW);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t oy = task % OH, gi = (task / OH) % G, n = task / OH / G;
      row_taps<scalar_t>(off, n, gi, oy, H, W, s, &taps);
      sample_row<scalar_t>(x, taps, out, n * C + gi * cg, cg, oy, H, W, s);
    }
  });
}

// The taps of output row (i, si) of one group in the fused forward, from
// the group's scoped offsets in the row buffer: x offsets of sub-pixel
// column sj at dx[sj * stride + j], y offsets likewise at dy. The scalar
// loop starts at column j0 (0, or where a vector loop stopped).
template <typename scalar_t>
void fused_row_taps_scalar(const scalar_t* dx, const scalar_t* dy,
                           int64_t stride, int64_t i, int64_t H, int64_t W,
                           int64_t s, int64_t j0, RowTaps<scalar_t>* taps) {
  for (int64_t j = j0, ox = j0 * s; j < W; ++j) {
    for (int64_t sj = 0; sj < s; ++sj, ++ox) {
      set_tap<scalar_t>(taps, ox, i, j, dx[sj * stride + j],
                        dy[sj * stride + j], H, W);
    }
  }
}

template <typename scalar_t>
void fused_row_taps(const scalar_t* dx, const scalar_t* dy, int64_t stride,
                    int64_t i, int64_t H, int64_t W, int64_t s,
                    RowTaps<scalar_t>* taps) {
  fused_row_taps_scalar<scalar_t>(dx, dy, stride, i, H, W, s, 0, taps);
}

#ifdef MMDYSAMPLE_X86
// x2 upsampling (the paper's case) on maps of at least 2 x 2, eight output
// pixels at a time: set_tap's clamping and cell split as vector min / max
// and truncation, with the same results (NaN clamps to 0). The forward pass
// reads no gradient masks, so none are written (the tail's are unused).
__attribute__((target("avx2,fma"))) void fused_row_taps_x2_avx2(
    const float* dx, const float* dy, int64_t stride, int64_t i, int64_t H,
    int64_t W, RowTaps<float>* taps) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 hi_x = _mm256_set1_ps(static_cast<float>(W - 1));
  const __m256 hi_y = _mm256_set1_ps(static_cast<float>(H - 1));
  const __m256i last_x = _mm256_set1_epi32(static_cast<int32_t>(W - 2));
  const __m256i last_y = _mm256_set1_epi32(static_cast<int32_t>(H - 2));
  const __m256i width = _mm256_set1_epi32(static_cast<int32_t>(W));
  const __m256 pairs = _mm256_setr_ps(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256 row = _mm256_set1_ps(static_cast<float>(i));
  int64_t j = 0;
  for (; j + 4 <= W; j += 4) {
    // Sub-pixel columns 0 and 1 interleaved: the output pixels' order.
    const __m128 x0 = _mm_loadu_ps(dx + j), x1 = _mm_loadu_ps(dx + stride + j);
    const __m128 y0 = _mm_loadu_ps(dy + j), y1 = _mm_loadu_ps(dy + stride + j);
    const __m256 ox = _mm256_set_m128(_mm_unpackhi_ps(x0, x1),
                                      _mm_unpacklo_ps(x0, x1));
    const __m256 oy = _mm256_set_m128(_mm_unpackhi_ps(y0, y1),
                                      _mm_unpacklo_ps(y0, y1));
    const __m256 px = _mm256_add_ps(
        _mm256_add_ps(_mm256_set1_ps(static_cast<float>(j)), pairs), ox);
    const __m256 py = _mm256_add_ps(row, oy);
    // max(v, 0) returns 0 for NaN (its second operand).
    const __m256 cx = _mm256_min_ps(_mm256_max_ps(px, zero), hi_x);
    const __m256 cy = _mm256_min_ps(_mm256_max_ps(py, zero), hi_y);
    const __m256i ix = _mm256_min_epi32(_mm256_cvttps_epi32(cx), last_x);
    const __m256i iy = _mm256_min_epi32(_mm256_cvttps_epi32(cy), last_y);
    const int64_t o = 2 * j;
    _mm256_storeu_ps(taps->ax.data() + o,
                     _mm256_sub_ps(cx, _mm256_cvtepi32_ps(ix)));
    _mm256_storeu_ps(taps->ay.data() + o,
                     _mm256_sub_ps(cy, _mm256_cvtepi32_ps(iy)));
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(taps->idx.data() + o),
        _mm256_add_epi32(_mm256_mullo_epi32(iy, width), ix));
  }
  fused_row_taps_scalar<float>(dx, dy, stride, i, H, W, 2, j, taps);
}

template <>
void fused_row_taps<float>(const float* dx, const float* dy, int64_t stride,
                           int64_t i, int64_t H, int64_t W, int64_t s,
                           RowTaps<float>* taps) {
  if (s == 2 && H >= 2 && W >= 2 && dysample::use_avx2()) {
    fused_row_taps_x2_avx2(dx, dy, stride, i, H, W, taps);
  } else {
    fused_row_taps_scalar<float>(dx, dy, stride, i, H, W, s, 0, taps);
  }
}
#endif

// The whole layer's forward: offsets predicted row by row (the projection
// of row_projection.h, then the scope of eq. 4 / 5 and the initial
// positions) and sampled at once. A task is one input row of one image:
// its k = 2*G*s*s offsets (and, with a dynamic scope, k scope logits) are
// computed into a buffer of the thread, and its s output rows of every
// channel are sampled from them. `raw` (may be null) receives the
// projection, scope logits turned into factors, for the backward pass.
template <typename scalar_t>
void fused_forward_impl(const scalar_t* x,
                        const dysample::Projection<scalar_t>& proj,
                        int64_t nb, const scalar_t* init, scalar_t scale,
                        bool dyscope, scalar_t* out, scalar_t* raw,
                        int64_t N, int64_t C, int64_t H, int64_t W, int64_t s,
                        int64_t G) {
  using dysample::kTile;
  const int64_t HW = H * W, OW = W * s, cg = C / G;
  const int64_t gss = G * s * s, k = 2 * gss, channels = dyscope ? 2 * k : k;
  const int64_t Wp = dysample::padded_width(W);
  at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> tile(proj.cin * kTile), row(channels * Wp);
    RowTaps<scalar_t> taps(OW);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / H, i = task % H;
      const scalar_t* img = x + n * C * HW;
      // Channel o * nb + kk of `row` (stride Wp) for each sub-pixel kk.
      dysample::project_row<scalar_t>(img, HW, W, i, nb, proj, tile.data(),
                                      row.data(), Wp);
      scalar_t* factors = row.data() + k * Wp;
      if (dyscope) dysample::sigmoid_inplace<scalar_t>(factors, k * Wp);
      if (raw != nullptr) {
        scalar_t* dst = raw + n * channels * HW + i * W;
        for (int64_t c = 0; c < channels; ++c) {
          std::copy(row.data() + c * Wp, row.data() + c * Wp + W,
                    dst + c * HW);
        }
      }
      // Scoped offsets in place of the raw ones (paper eq. 4 / 5).
      for (int64_t c = 0; c < k; ++c) {
        scalar_t* v = row.data() + c * Wp;
        const scalar_t* f = factors + c * Wp;
        const scalar_t add = init[c];
        if (dyscope) {
          for (int64_t j = 0; j < W; ++j) v[j] = v[j] * f[j] * scale + add;
        } else {
          for (int64_t j = 0; j < W; ++j) v[j] = v[j] * scale + add;
        }
      }
      for (int64_t si = 0; si < s; ++si) {
        const int64_t oy = i * s + si;
        for (int64_t gi = 0; gi < G; ++gi) {
          const scalar_t* dx = row.data() + (gi * s + si) * s * Wp;
          const scalar_t* dy = dx + gss * Wp;
          fused_row_taps<scalar_t>(dx, dy, Wp, i, H, W, s, &taps);
          sample_row<scalar_t>(x, taps, out, n * C + gi * cg, cg, oy, H, W,
                               s);
        }
      }
    }
  });
}

// Gradient of one output row of one group: scatters into the group's input
// planes (if gx) and sums the coordinate slopes over its channels (if goff).
template <typename scalar_t>
void backward_row(const scalar_t* gout, const scalar_t* x,
                  const RowTaps<scalar_t>& taps, scalar_t* gx, scalar_t* dx,
                  scalar_t* dy, int64_t n, int64_t gi, int64_t oy, int64_t C,
                  int64_t H, int64_t W, int64_t s, int64_t G) {
  const int64_t cg = C / G, OW = W * s, HW = H * W, OHW = H * s * OW;
  const int64_t sx = W > 1 ? 1 : 0, sy = H > 1 ? W : 0;
  for (int64_t c = 0; c < cg; ++c) {
    const int64_t plane = n * C + gi * cg + c;
    const scalar_t* in = x + plane * HW;
    const scalar_t* go = gout + plane * OHW + oy * OW;
    scalar_t* g = gx != nullptr ? gx + plane * HW : nullptr;
    for (int64_t ox = 0; ox < OW; ++ox) {
      const int64_t k = taps.idx[ox];
      const scalar_t fx = taps.ax[ox], fy = taps.ay[ox], v = go[ox];
      if (g != nullptr) {
        g[k] += (1 - fy) * (1 - fx) * v;
        g[k + sx] += (1 - fy) * fx * v;
        g[k + sy] += fy * (1 - fx) * v;
        g[k + sy + sx] += fy * fx * v;
      }
      if (dx != nullptr) {
        const scalar_t v00 = in[k], v01 = in[k + sx];
        const scalar_t v10 = in[k + sy], v11 = in[k + sy + sx];
        dx[ox] += v * ((1 - fy) * (v01 - v00) + fy * (v11 - v10));
        dy[ox] += v * ((1 - fx) * (v10 - v00) + fx * (v11 - v01));
      }
    }
  }
}

// Chain rule from the gradient `g` of a scoped offset (see Offsets) to its
// raw value, and to its scope factor with a dynamic scope.
template <typename scalar_t>
inline void scope_grad(const Offsets<scalar_t>& off, const scalar_t* img,
                       scalar_t* gimg, int64_t pos, scalar_t g) {
  if (!off.dyscope) {
    gimg[pos] = g * off.scale;
    return;
  }
  const int64_t factor = 2 * off.gss * off.HW + pos;
  const scalar_t f = img[factor];
  gimg[pos] = g * f * off.scale;
  const scalar_t gf = g * img[pos] * off.scale;
  gimg[factor] = off.logits ? gf * f * (scalar_t(1) - f) : gf;
}

// Write a row's summed slopes into the offset gradient; each output pixel
// owns one offset element.
template <typename scalar_t>
void store_offset_grad(const RowTaps<scalar_t>& taps, const scalar_t* dx,
                       const scalar_t* dy, const Offsets<scalar_t>& off,
                       scalar_t* goff, int64_t n, int64_t gi, int64_t oy,
                       int64_t H, int64_t W, int64_t s) {
  const int64_t HW = H * W, gss = off.gss, OW = W * s;
  const int64_t i = oy / s, si = oy % s;
  const int64_t first = n * (off.dyscope ? 4 : 2) * gss * HW;
  const scalar_t* img = off.raw + first;
  scalar_t* gimg = goff + first;
  for (int64_t ox = 0; ox < OW; ++ox) {
    const int64_t j = ox / s, sj = ox % s;
    const int64_t pos = ((gi * s + si) * s + sj) * HW + i * W + j;
    // A size-1 axis has no slope: its taps coincide.
    const scalar_t gx = W > 1 ? dx[ox] * taps.mx[ox] : scalar_t(0);
    const scalar_t gy = H > 1 ? dy[ox] * taps.my[ox] : scalar_t(0);
    scope_grad(off, img, gimg, pos, gx);
    scope_grad(off, img, gimg, gss * HW + pos, gy);
  }
}

template <typename scalar_t>
void backward_impl(const scalar_t* gout, const scalar_t* x,
                   const Offsets<scalar_t>& off, scalar_t* gx,
                   scalar_t* goff, int64_t N, int64_t C, int64_t H,
                   int64_t W, int64_t s, int64_t G) {
  const int64_t OH = H * s, OW = W * s, cg = C / G, HW = H * W;
  // With an input gradient, a task is one group of one image: no other task
  // scatters into its planes, and gout is read once for both gradients.
  // Without one (or with fewer groups than threads), rows are the tasks.
  const bool by_group = gx != nullptr && N * G >= at::get_num_threads();
  // gx arrives uninitialised: each task zeroes the planes it owns, so the
  // memory is first touched by the thread that then scatters into it.
  auto zero_planes = [&](int64_t ng) {
    scalar_t* first = gx + ((ng / G) * C + (ng % G) * cg) * HW;
    std::fill(first, first + cg * HW, scalar_t(0));
  };
  if (gx != nullptr && !by_group) {
    at::parallel_for(0, N * G, 1, [&](int64_t begin, int64_t end) {
      RowTaps<scalar_t> taps(OW);
      for (int64_t ng = begin; ng < end; ++ng) {
        zero_planes(ng);
        for (int64_t oy = 0; oy < OH; ++oy) {
          row_taps<scalar_t>(off, ng / G, ng % G, oy, H, W, s, &taps);
          backward_row<scalar_t>(gout, x, taps, gx, nullptr, nullptr, ng / G,
                                 ng % G, oy, C, H, W, s, G);
        }
      }
    });
  }
  if (by_group) {
    at::parallel_for(0, N * G, 1, [&](int64_t begin, int64_t end) {
      RowTaps<scalar_t> taps(OW);
      std::vector<scalar_t> dx(OW), dy(OW);
      for (int64_t ng = begin; ng < end; ++ng) {
        const int64_t n = ng / G, gi = ng % G;
        zero_planes(ng);
        for (int64_t oy = 0; oy < OH; ++oy) {
          row_taps<scalar_t>(off, n, gi, oy, H, W, s, &taps);
          std::fill(dx.begin(), dx.end(), scalar_t(0));
          std::fill(dy.begin(), dy.end(), scalar_t(0));
          const bool slopes = goff != nullptr;
          backward_row<scalar_t>(gout, x, taps, gx, slopes ? dx.data() : nullptr,
                                 slopes ? dy.data() : nullptr, n, gi, oy, C, H,
                                 W, s, G);
          if (slopes) {
            store_offset_grad<scalar_t>(taps, dx.data(), dy.data(), off, goff,
                                        n, gi, oy, H, W, s);
          }
        }
      }
    });
  } else if (goff != nullptr) {
    at::parallel_for(0, N * G * OH, 1, [&](int64_t begin, int64_t end) {
      RowTaps<scalar_t> taps(OW);
      std::vector<scalar_t> dx(OW), dy(OW);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t oy = task % OH, gi = (task / OH) % G,
                      n = task / OH / G;
        row_taps<scalar_t>(off, n, gi, oy, H, W, s, &taps);
        std::fill(dx.begin(), dx.end(), scalar_t(0));
        std::fill(dy.begin(), dy.end(), scalar_t(0));
        backward_row<scalar_t>(gout, x, taps, nullptr, dx.data(), dy.data(),
                               n, gi, oy, C, H, W, s, G);
        store_offset_grad<scalar_t>(taps, dx.data(), dy.data(), off, goff, n,
                                    gi, oy, H, W, s);
      }
    });
  }
}

// Tap indices are 32-bit (half the memory traffic of the taps).
void check_plane(const torch::Tensor& x) {
  TORCH_CHECK(x.size(2) * x.size(3) <= std::numeric_limits<int32_t>::max(),
              "dysample_cpu: H * W must be below 2^31, got ", x.size(2),
              " x ", x.size(3));
}

void check_inputs(const torch::Tensor& x, const torch::Tensor& off,
                  const torch::Tensor& init, int64_t s, int64_t G,
                  bool dyscope) {
  TORCH_CHECK(x.device().is_cpu() && off.device().is_cpu() &&
                  init.device().is_cpu(),
              "dysample_cpu: tensors must be on the CPU");
  TORCH_CHECK(x.dim() == 4 && off.dim() == 4, "dysample_cpu: 4-D inputs");
  TORCH_CHECK(x.scalar_type() == off.scalar_type() &&
                  (init.numel() == 0 || init.scalar_type() == x.scalar_type()),
              "dysample_cpu: x, offset and init must share a dtype");
  TORCH_CHECK(x.is_contiguous() && off.is_contiguous() && init.is_contiguous(),
              "dysample_cpu: contiguous inputs expected");
  TORCH_CHECK(s >= 1 && G >= 1 && x.size(1) % G == 0,
              "dysample_cpu: bad scale factor or groups");
  check_plane(x);
  TORCH_CHECK(off.size(0) == x.size(0) &&
                  off.size(1) == (dyscope ? 4 : 2) * G * s * s &&
                  off.size(2) == x.size(2) && off.size(3) == x.size(3),
              "dysample_cpu: offset must be (N, 2*g*s*s, H, W), with a "
              "dynamic scope (N, 4*g*s*s, H, W)");
  TORCH_CHECK(init.numel() == 0 || init.numel() == 2 * G * s * s,
              "dysample_cpu: init must be empty or hold 2*g*s*s values");
}

template <typename scalar_t>
Offsets<scalar_t> make_offsets(const torch::Tensor& off,
                               const torch::Tensor& init, double scale,
                               bool dyscope, int64_t s, int64_t G,
                               bool logits = false) {
  return Offsets<scalar_t>{
      off.data_ptr<scalar_t>(),
      init.numel() > 0 ? init.data_ptr<scalar_t>() : nullptr,
      static_cast<scalar_t>(scale), dyscope, G * s * s,
      off.size(2) * off.size(3), logits};
}

// Sampling at offsets as dysample_sample takes them (the layer's forward
// is forward_fused; backward serves both).
torch::Tensor forward(torch::Tensor x, torch::Tensor off, int64_t s,
                      int64_t G) {
  const auto init = x.new_empty({0});
  check_inputs(x, off, init, s, G, false);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto out = torch::empty({N, C, H * s, W * s}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dysample_cpu_forward", [&] {
    forward_impl<scalar_t>(x.data_ptr<scalar_t>(),
                           make_offsets<scalar_t>(off, init, 1.0, false, s,
                                                  G),
                           out.data_ptr<scalar_t>(), N, C, H, W, s, G);
  });
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor gout, torch::Tensor x,
                                    torch::Tensor off, torch::Tensor init,
                                    double scale, bool dyscope, int64_t s,
                                    int64_t G, bool need_x, bool need_off,
                                    bool logits) {
  check_inputs(x, off, init, s, G, dyscope);
  TORCH_CHECK(gout.is_contiguous(), "dysample_cpu: contiguous grad expected");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto gx = need_x ? torch::empty_like(x) : torch::Tensor();
  auto goff = need_off ? torch::empty_like(off) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dysample_cpu_backward", [&] {
    backward_impl<scalar_t>(
        gout.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
        make_offsets<scalar_t>(off, init, scale, dyscope, s, G, logits),
        need_x ? gx.data_ptr<scalar_t>() : nullptr,
        need_off ? goff.data_ptr<scalar_t>() : nullptr, N, C, H, W, s, G);
  });
  return {gx, goff};
}

// The layer's forward in one pass (see fused_forward_impl). `weight` is the
// stacked projection, (P, Cin) or (P, Cin, 1, 1): P = k or 2k outputs for
// 'lp' (nb = 1), 2G or 4G for 'pl' (nb = s * s, Cin = C / nb); `bias` is
// empty or (P). Returns the output and, with `save_raw`, the projection
// with scope factors (N, k or 2k, H, W) that `backward` takes (logits=True).
std::vector<torch::Tensor> forward_fused(torch::Tensor x, torch::Tensor weight,
                                         torch::Tensor bias,
                                         torch::Tensor init, double scale,
                                         bool dyscope, int64_t nb, int64_t s,
                                         int64_t G, bool save_raw) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu() &&
                  bias.device().is_cpu() && init.device().is_cpu(),
              "dysample_cpu: tensors must be on the CPU");
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(),
              "dysample_cpu: contiguous 4-D input expected");
  check_plane(x);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t k = 2 * G * s * s, channels = dyscope ? 2 * k : k;
  TORCH_CHECK(s >= 1 && G >= 1 && C % G == 0 && nb >= 1 && C % nb == 0 &&
                  channels % nb == 0,
              "dysample_cpu: bad scale factor, groups or sub-pixel count");
  auto w2 = weight.reshape({weight.size(0), -1});
  TORCH_CHECK(w2.size(0) * nb == channels && w2.size(1) * nb == C,
              "dysample_cpu: weight must be (", channels / nb, ", ", C / nb,
              "), got ", weight.sizes());
  TORCH_CHECK(bias.numel() == 0 || bias.numel() == w2.size(0),
              "dysample_cpu: bias must be empty or hold P values");
  TORCH_CHECK(init.numel() == k, "dysample_cpu: init must hold 2*g*s*s values");
  TORCH_CHECK(w2.scalar_type() == x.scalar_type() &&
                  init.scalar_type() == x.scalar_type() &&
                  (bias.numel() == 0 || bias.scalar_type() == x.scalar_type()),
              "dysample_cpu: x, weight, bias and init must share a dtype");
  auto w_rows = w2.contiguous();
  auto blocked = torch::empty_like(w_rows);
  auto b = bias.contiguous();
  auto in = init.contiguous();
  auto out = torch::empty({N, C, H * s, W * s}, x.options());
  auto raw = save_raw ? torch::empty({N, channels, H, W}, x.options())
                      : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dysample_cpu_fused", [&] {
    dysample::block_weights<scalar_t>(w_rows.data_ptr<scalar_t>(),
                                      w2.size(0), w2.size(1),
                                      blocked.data_ptr<scalar_t>());
    const dysample::Projection<scalar_t> proj{
        blocked.data_ptr<scalar_t>(),
        b.numel() > 0 ? b.data_ptr<scalar_t>() : nullptr, w2.size(1),
        w2.size(0)};
    fused_forward_impl<scalar_t>(
        x.data_ptr<scalar_t>(), proj, nb, in.data_ptr<scalar_t>(),
        static_cast<scalar_t>(scale), dyscope, out.data_ptr<scalar_t>(),
        save_raw ? raw.data_ptr<scalar_t>() : nullptr, N, C, H, W, s, G);
  });
  return {out, raw};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "DySample sampling, forward (CPU)");
  m.def("backward", &backward, "DySample sampling, backward (CPU)");
  m.def("set_simd", &dysample::set_simd,
        "Allow (true, the default) or forbid the AVX2 paths");
  m.def("simd", &dysample::use_avx2, "Whether the AVX2 paths run");
  m.def("forward_fused", &forward_fused,
        "DySample projection, scope and sampling in one pass (CPU)");
}
