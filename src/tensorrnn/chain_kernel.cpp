// The normalised sequential TT chain, forward and backward, as one C++ loop each.
//
// Why: per position the chain does three GEMMs of B·n·r² multiply-adds and a few
// passes over a (B, n·r) intermediate. In Python every pass is a separate kernel
// with its own dispatch and its own trip through memory; here each position is
// its GEMMs (ATen's, i.e. MKL or OpenBLAS) plus hand-fused passes, each of which
// reads or writes an intermediate once. Loaded by tensorrnn.chain_kernel.
//
// Shapes: h (B, r) unit state; phi (B, m, n) features per step, any strides but a
// contiguous last dimension (a slice of the network's (B, d, n) input, so no copy);
// cores (c, r, n·r) with c = 1 (shared core) or c = m (distinct cores),
// core[a, i·r + s] = G[a, i, s].
//
// Reductions are written for `#pragma omp simd` (built with -fopenmp-simd): the
// compiler may then sum in vector lanes, so results agree with the plain loops to
// rounding, and do not depend on the thread count (threads split the batch rows).

#include <torch/extension.h>

#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 32;  // batch rows per parallel task

// out[s] = Σ_i w[i] rows[i·r + s], a block of kBlock columns at a time in a local
// array: the compiler keeps it in registers, where an out[] in memory would make
// every row wait for the previous row's store.
constexpr int64_t kBlock = 16;

template <typename T>
inline void accumulate_rows(const T* rows, const T* w, T* out, int64_t n, int64_t r) {
  int64_t s0 = 0;
  for (; s0 + kBlock <= r; s0 += kBlock) {
    T acc[kBlock];
    for (int64_t s = 0; s < kBlock; ++s) acc[s] = w[0] * rows[s0 + s];
    for (int64_t i = 1; i < n; ++i) {
      const T wi = w[i];
      const T* slice = rows + i * r + s0;
      for (int64_t s = 0; s < kBlock; ++s) acc[s] += wi * slice[s];
    }
    for (int64_t s = 0; s < kBlock; ++s) out[s0 + s] = acc[s];
  }
  for (int64_t s = s0; s < r; ++s) {
    T acc = w[0] * rows[s];
    for (int64_t i = 1; i < n; ++i) acc += w[i] * rows[i * r + s];
    out[s] = acc;
  }
}

// u[b, s] = Σ_i φ[b, i] mixed[b, i, s];  c[b] = sqrt(‖u[b]‖² + eps²);  h[b] = u[b] / c[b].
template <typename T>
void contract_and_normalise(const T* mixed, const T* phi, int64_t phi_row, T* state, T* norm,
                            int64_t batch, int64_t n, int64_t r, double eps) {
  at::parallel_for(0, batch, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      T* u = state + b * r;
      accumulate_rows<T>(mixed + b * n * r, phi + b * phi_row, u, n, r);
      T square = 0;
#pragma omp simd reduction(+ : square)
      for (int64_t s = 0; s < r; ++s) square += u[s] * u[s];
      const T c = std::sqrt(square + static_cast<T>(eps * eps));
      const T inverse = T(1) / c;
      for (int64_t s = 0; s < r; ++s) u[s] *= inverse;
      norm[b] = c;
    }
  });
}

// Through h = u / c and log c (Jacobians (I − h hᵀ)/c and hᵀ/c):
// gu[b] = (g[b] − h[b] (h[b]·g[b] − g_log[b])) / c[b]; then outer[b, i, s] = φ[b, i] gu[b, s].
template <typename T>
void unit_backward_and_outer(const T* unit, const T* norm, const T* g, const T* g_log, const T* phi,
                             int64_t phi_row, T* gu, T* outer, int64_t batch, int64_t n, int64_t r) {
  at::parallel_for(0, batch, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const T* h = unit + b * r;
      const T* gb = g + b * r;
      T* out = gu + b * r;
      T radial = 0;
#pragma omp simd reduction(+ : radial)
      for (int64_t s = 0; s < r; ++s) radial += h[s] * gb[s];
      radial -= g_log[b];
      const T inverse = T(1) / norm[b];
      for (int64_t s = 0; s < r; ++s) out[s] = (gb[s] - h[s] * radial) * inverse;
      const T* f = phi + b * phi_row;
      T* row = outer + b * n * r;
      for (int64_t i = 0; i < n; ++i) {
        const T fi = f[i];
        for (int64_t s = 0; s < r; ++s) row[i * r + s] = fi * out[s];
      }
    }
  });
}

// v[b, i, a] = Σ_s G[a, i, s] gu[b, s] (a GEMM before this); from one pass over v:
// g[b, a] = Σ_i φ[b, i] v[b, i, a] (the previous state's gradient) and
// grad_phi[b, i] = Σ_a h_prev[b, a] v[b, i, a].
template <typename T>
void split_back(const T* v, const T* phi, int64_t phi_row, const T* prev, T* g, T* grad_phi,
                int64_t grad_row, int64_t batch, int64_t n, int64_t r) {
  at::parallel_for(0, batch, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const T* f = phi + b * phi_row;
      const T* h = prev + b * r;
      const T* row = v + b * n * r;
      accumulate_rows<T>(row, f, g + b * r, n, r);
      for (int64_t i = 0; i < n; ++i) {
        const T* slice = row + i * r;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t a = 0; a < r; ++a) dot += h[a] * slice[a];
        grad_phi[b * grad_row + i] = dot;
      }
    }
  });
}

void check_inputs(const torch::Tensor& h, const torch::Tensor& phi, const torch::Tensor& cores) {
  TORCH_CHECK(h.device().is_cpu() && phi.device().is_cpu() && cores.device().is_cpu(),
              "the fused chain runs on CPU tensors only");
  TORCH_CHECK(h.dim() == 2 && phi.dim() == 3 && cores.dim() == 3, "bad ranks for h, phi, cores");
  TORCH_CHECK(h.scalar_type() == phi.scalar_type() && h.scalar_type() == cores.scalar_type(),
              "h, phi and cores must share one dtype");
  const int64_t m = phi.size(1), r = h.size(1), n = phi.size(2);
  TORCH_CHECK(phi.size(0) == h.size(0), "phi and h disagree on the batch");
  TORCH_CHECK(phi.stride(2) == 1, "phi's last dimension must be contiguous");
  TORCH_CHECK(cores.size(0) == 1 || cores.size(0) == m, "cores: one shared core or one per step");
  TORCH_CHECK(cores.size(1) == r && cores.size(2) == n * r, "cores must be (c, r, n·r)");
}

}  // namespace

// Returns the unit states (m+1, B, r), h first, and the norms c_t (m, B).
std::vector<torch::Tensor> chain_forward(torch::Tensor h, torch::Tensor phi, torch::Tensor cores,
                                         double eps) {
  check_inputs(h, phi, cores);
  cores = cores.contiguous();
  const int64_t m = phi.size(1), batch = h.size(0), r = h.size(1), n = phi.size(2);
  auto states = torch::empty({m + 1, batch, r}, h.options());
  states[0].copy_(h);
  auto norms = torch::empty({m, batch}, h.options());
  auto mixed = torch::empty({batch, n * r}, h.options());
  const bool shared = cores.size(0) == 1;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "chain_forward", [&] {
    const scalar_t* features = phi.data_ptr<scalar_t>();
    scalar_t* state = states.data_ptr<scalar_t>();
    scalar_t* norm = norms.data_ptr<scalar_t>();
    const torch::Tensor shared_core = cores[0];
    for (int64_t t = 0; t < m; ++t) {
      at::mm_out(mixed, states.select(0, t), shared ? shared_core : cores.select(0, t));
      contract_and_normalise<scalar_t>(mixed.data_ptr<scalar_t>(), features + t * phi.stride(1),
                                       phi.stride(0), state + (t + 1) * batch * r, norm + t * batch,
                                       batch, n, r, eps);
    }
  });
  return {states, norms};
}

// states (m+1, B, r) holds the state before step 1 first. Returns the gradients for
// that first state (B, r), for phi (B, m, n) and for cores (c, r, n·r).
std::vector<torch::Tensor> chain_backward(torch::Tensor states, torch::Tensor norms, torch::Tensor phi,
                                          torch::Tensor cores, torch::Tensor g, torch::Tensor g_log) {
  check_inputs(g, phi, cores);
  states = states.contiguous();
  norms = norms.contiguous();
  cores = cores.contiguous();
  g = g.contiguous().clone();
  g_log = g_log.contiguous();
  const int64_t m = phi.size(1), batch = g.size(0), r = g.size(1), n = phi.size(2);
  const bool shared = cores.size(0) == 1;
  // w[s, i·r + a] = G[a, i, s]: v = gu · w comes out as (B, n, r), contiguous in a.
  auto w = cores.view({cores.size(0), r, n, r}).permute({0, 3, 2, 1}).reshape({cores.size(0), r, n * r});
  auto grad_phi = torch::empty({batch, m, n}, phi.options());
  auto grad_cores = torch::zeros_like(cores);
  auto gu = torch::empty({batch, r}, g.options());
  auto outer = torch::empty({batch, n * r}, g.options());
  auto v = torch::empty({batch, n * r}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "chain_backward", [&] {
    const scalar_t* features = phi.data_ptr<scalar_t>();
    const scalar_t* state = states.data_ptr<scalar_t>();
    const scalar_t* norm = norms.data_ptr<scalar_t>();
    scalar_t* grad_features = grad_phi.data_ptr<scalar_t>();
    torch::Tensor shared_grad = grad_cores[0], shared_w = w[0];
    for (int64_t t = m - 1; t >= 0; --t) {
      const scalar_t* f = features + t * phi.stride(1);
      const torch::Tensor prev = states.select(0, t);
      unit_backward_and_outer<scalar_t>(state + (t + 1) * batch * r, norm + t * batch, g.data_ptr<scalar_t>(),
                                        g_log.data_ptr<scalar_t>(), f, phi.stride(0),
                                        gu.data_ptr<scalar_t>(), outer.data_ptr<scalar_t>(), batch, n, r);
      torch::Tensor grad_core = shared ? shared_grad : grad_cores.select(0, t);
      grad_core.addmm_(prev.t(), outer);
      at::mm_out(v, gu, shared ? shared_w : w.select(0, t));
      split_back<scalar_t>(v.data_ptr<scalar_t>(), f, phi.stride(0), prev.data_ptr<scalar_t>(),
                           g.data_ptr<scalar_t>(), grad_features + t * n, m * n, batch, n, r);
    }
  });
  return {g, grad_phi, grad_cores};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("chain_forward", &chain_forward, "normalised TT chain, forward");
  module.def("chain_backward", &chain_backward, "normalised TT chain, backward");
}
