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
// The offsets may also arrive as the layer's raw projection, so that the
// scope arithmetic of DySample (paper eq. 4 and 5) needs no tensors of its
// own: offset = raw * scale [* dynamic scope] + init, with `init` one value
// per offset channel (the initial positions) and the dynamic scope factors
// sigmoid(logit) stored as a second half of `off`'s channels (the sigmoid
// itself is left to torch's vectorised op: a scalar exp per point costs
// more). The gradient is then returned for `raw` and the scope factors.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
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
  std::vector<int64_t> idx;
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

template <typename scalar_t>
void row_taps(const Offsets<scalar_t>& off, int64_t n, int64_t gi,
              int64_t oy, int64_t H, int64_t W, int64_t s,
              RowTaps<scalar_t>* taps) {
  const int64_t HW = H * W, gss = off.gss, OW = W * s;
  const int64_t i = oy / s, si = oy % s;
  const scalar_t* img = off.image(n);
  for (int64_t ox = 0; ox < OW; ++ox) {
    const int64_t j = ox / s, sj = ox % s;
    const int64_t c = (gi * s + si) * s + sj;
    const int64_t pos = c * HW + i * W + j;
    const scalar_t dx = off.value(img, c, pos);
    const scalar_t dy = off.value(img, gss + c, gss * HW + pos);
    const scalar_t px = clamp_coord<scalar_t>(j + dx, W, &taps->mx[ox]);
    const scalar_t py = clamp_coord<scalar_t>(i + dy, H, &taps->my[ox]);
    const int64_t x0 = cell<scalar_t>(px, W, &taps->ax[ox]);
    const int64_t y0 = cell<scalar_t>(py, H, &taps->ay[ox]);
    taps->idx[ox] = y0 * W + x0;
  }
}

// Channels are processed `kBlock` at a time so each row's taps are loaded
// once per block rather than once per channel.
constexpr int64_t kBlock = 4;

template <typename scalar_t>
inline scalar_t lerp4(const scalar_t* in, int64_t k, int64_t sx, int64_t sy,
                      scalar_t ax, scalar_t ay) {
  const scalar_t top = in[k] + ax * (in[k + sx] - in[k]);
  const scalar_t bot = in[k + sy] + ax * (in[k + sy + sx] - in[k + sy]);
  return top + ay * (bot - top);
}

template <typename scalar_t>
void forward_impl(const scalar_t* x, const Offsets<scalar_t>& off,
                  scalar_t* out, int64_t N, int64_t C, int64_t H, int64_t W,
                  int64_t s, int64_t G) {
  const int64_t cg = C / G, OH = H * s, OW = W * s;
  const int64_t HW = H * W, OHW = OH * OW;
  const int64_t sx = W > 1 ? 1 : 0, sy = H > 1 ? W : 0;
  at::parallel_for(0, N * G * OH, 1, [&](int64_t begin, int64_t end) {
    RowTaps<scalar_t> taps(OW);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t oy = task % OH, gi = (task / OH) % G, n = task / OH / G;
      row_taps<scalar_t>(off, n, gi, oy, H, W, s, &taps);
      const int64_t* idx = taps.idx.data();
      const scalar_t* ax = taps.ax.data();
      const scalar_t* ay = taps.ay.data();
      const int64_t plane0 = n * C + gi * cg;
      int64_t c = 0;
      for (; c + kBlock <= cg; c += kBlock) {
        const scalar_t* in0 = x + (plane0 + c) * HW;
        const scalar_t* in1 = in0 + HW;
        const scalar_t* in2 = in1 + HW;
        const scalar_t* in3 = in2 + HW;
        scalar_t* o0 = out + (plane0 + c) * OHW + oy * OW;
        scalar_t* o1 = o0 + OHW;
        scalar_t* o2 = o1 + OHW;
        scalar_t* o3 = o2 + OHW;
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t k = idx[ox];
          const scalar_t fx = ax[ox], fy = ay[ox];
          o0[ox] = lerp4(in0, k, sx, sy, fx, fy);
          o1[ox] = lerp4(in1, k, sx, sy, fx, fy);
          o2[ox] = lerp4(in2, k, sx, sy, fx, fy);
          o3[ox] = lerp4(in3, k, sx, sy, fx, fy);
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
  gimg[pos] = g * img[factor] * off.scale;
  gimg[factor] = g * img[pos] * off.scale;
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
                               bool dyscope, int64_t s, int64_t G) {
  return Offsets<scalar_t>{
      off.data_ptr<scalar_t>(),
      init.numel() > 0 ? init.data_ptr<scalar_t>() : nullptr,
      static_cast<scalar_t>(scale), dyscope, G * s * s,
      off.size(2) * off.size(3)};
}

torch::Tensor forward(torch::Tensor x, torch::Tensor off, torch::Tensor init,
                      double scale, bool dyscope, int64_t s, int64_t G) {
  check_inputs(x, off, init, s, G, dyscope);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto out = torch::empty({N, C, H * s, W * s}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dysample_cpu_forward", [&] {
    forward_impl<scalar_t>(x.data_ptr<scalar_t>(),
                           make_offsets<scalar_t>(off, init, scale, dyscope,
                                                  s, G),
                           out.data_ptr<scalar_t>(), N, C, H, W, s, G);
  });
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor gout, torch::Tensor x,
                                    torch::Tensor off, torch::Tensor init,
                                    double scale, bool dyscope, int64_t s,
                                    int64_t G, bool need_x, bool need_off) {
  check_inputs(x, off, init, s, G, dyscope);
  TORCH_CHECK(gout.is_contiguous(), "dysample_cpu: contiguous grad expected");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto gx = need_x ? torch::empty_like(x) : torch::Tensor();
  auto goff = need_off ? torch::empty_like(off) : torch::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dysample_cpu_backward", [&] {
    backward_impl<scalar_t>(
        gout.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
        make_offsets<scalar_t>(off, init, scale, dyscope, s, G),
        need_x ? gx.data_ptr<scalar_t>() : nullptr,
        need_off ? goff.data_ptr<scalar_t>() : nullptr, N, C, H, W, s, G);
  });
  return {gx, goff};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "DySample sampling, forward (CPU)");
  m.def("backward", &backward, "DySample sampling, backward (CPU)");
}
