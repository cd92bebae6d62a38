// Forward/backward kernels of the trainer (see train_ops.h). Matmuls via kernels/gemm.h on NumThreads()
// threads (each output one FMA chain over k whatever the thread count), attention parallel over
// (sequence, KV head) items with each item's products on its own thread; elementwise and per-row work
// on kernels/parallel.h's pool too (per-row items, or chunks of kElementChunk elements: no OpenMP, whose
// idle workers spun beside the pool's GEMM threads and kept a step at one core's speed on two). So a training step is bitwise the same
// for any thread count (tests/harness/train_threads_test.cc).
#include "harness/train/train_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/parallel.h"
#include "kernels/status.h"

namespace ql::train {

namespace {

// at[cols, rows] = a[rows, cols]ᵀ (a with leading dimension lda): Gemm takes no transposed A.
void Transpose(const float* a, int rows, int cols, int lda, float* at) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) at[size_t(c) * rows + r] = a[size_t(r) * lda + c];
}

// y[rows, cols] (leading dimension ldy) += g[rows, cols] (dense).
void AddInto(const float* g, int rows, int cols, float* y, int ldy) {
  for (int r = 0; r < rows; ++r) ops::Add(g + size_t(r) * cols, y + size_t(r) * ldy, size_t(cols));
}

}  // namespace

void LinearForward(const float* x, const float* w, int n, int in, int out, float* y) {
  // y[n, out] = x[n, in] · w[out, in]^T
  Gemm(n, out, in, 1.0f, x, in, w, in, BLayout::kNK, y, out, NumThreads());
}

void LinearBackward(const float* x, const float* w, const float* dy, int n, int in, int out, float* dx,
                    float* dw) {
  // dx[n, in] = dy[n, out] · w[out, in]
  if (dx) Gemm(n, in, out, 1.0f, dy, out, w, in, BLayout::kKN, dx, in, NumThreads());
  if (!dw) return;
  // dw[out, in] += dy^T[out, n] · x[n, in], the product into scratch, then one add per element.
  thread_local std::vector<float> dyt, g;
  dyt.resize(size_t(out) * n);  // [out, n]
  g.resize(size_t(out) * in);   // [out, in]
  Transpose(dy, n, out, out, dyt.data());
  Gemm(out, in, n, 1.0f, dyt.data(), n, x, in, BLayout::kKN, g.data(), in, NumThreads());
  ops::Add(g.data(), dw, size_t(out) * in);
}

void RmsNormForward(const float* x, const float* w, int n, int d, float eps, float* y, float* rstd) {
  ParallelFor(n, NumThreads(), [&](int r, int) {
    const float* xr = x + size_t(r) * d;
    double ss = 0;
    for (int i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    const float rs = float(1.0 / std::sqrt(ss / d + eps));
    rstd[r] = rs;
    float* yr = y + size_t(r) * d;
    for (int i = 0; i < d; ++i) yr[i] = xr[i] * rs * w[i];
  });
}

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int n, int d,
                     float* dx, float* dw) {
  // y_i = x_i r w_i, r = (mean x^2 + eps)^-1/2, dr/dx_j = -r^3 x_j / d.
  // dx_j = r w_j dy_j - x_j r^3 / d * sum_i dy_i w_i x_i;  dw_i += sum_rows dy_i x_i r.
  for (int r = 0; r < n; ++r) {
    const float* xr = x + size_t(r) * d;
    const float* dyr = dy + size_t(r) * d;
    const float rs = rstd[r];
    double dot = 0;
    for (int i = 0; i < d; ++i) dot += double(dyr[i]) * w[i] * xr[i];
    const float coef = float(dot * double(rs) * rs * rs / d);
    float* dxr = dx + size_t(r) * d;
    for (int i = 0; i < d; ++i) {
      dxr[i] = rs * w[i] * dyr[i] - xr[i] * coef;
      dw[i] += dyr[i] * xr[i] * rs;
    }
  }
}

void RopeTables(int t, int head_dim, float theta, bool interleaved, std::vector<float>* cos,
                std::vector<float>* sin) {
  cos->assign(size_t(t) * head_dim, 0.0f);
  sin->assign(size_t(t) * head_dim, 0.0f);
  ops::RopeTables(0, size_t(t), size_t(head_dim), theta, interleaved, cos->data(), sin->data());
}

void RopeApply(float* x, int n, int t, int heads, int hd, const float* cos, const float* sin, bool interleaved,
               bool inverse) {
  // Pair (f, s): y_f = a c_f + b s_f, y_s = b c_s + a s_s with s_f = -sin, s_s = +sin (ops::RopeTables).
  // The inverse rotation swaps the sine entries.
  const int half = hd / 2;
  ParallelFor(n, NumThreads(), [&](int r, int) {
    const float* c = cos + size_t(r % t) * hd;
    const float* s = sin + size_t(r % t) * hd;
    for (int h = 0; h < heads; ++h) {
      float* xh = x + size_t(r) * heads * hd + size_t(h) * hd;
      for (int i = 0; i < half; ++i) {
        const int f = interleaved ? 2 * i : i, g = interleaved ? 2 * i + 1 : i + half;
        const float sf = inverse ? s[g] : s[f], sg = inverse ? s[f] : s[g];
        const float a = xh[f], b = xh[g];
        xh[f] = a * c[f] + b * sf;
        xh[g] = b * c[g] + a * sg;
      }
    }
  });
}

void AttentionForward(const float* q, const float* k, const float* v, int b, int t, int h, int kv, int hd,
                      float* probs, float* out) {
  const int qs = h * hd, ks = kv * hd, group = h / kv;
  const float scale = 1.0f / std::sqrt(float(hd));
  // One item per (sequence, query head): it writes only its own probs and output columns.
  ParallelFor(b * h, NumThreads(), [&](int item, int) {
    const int bi = item / h, hi = item % h;
    {
      const float* qb = q + size_t(bi) * t * qs + size_t(hi) * hd;        // [T, hd] stride qs
      const float* kb = k + size_t(bi) * t * ks + size_t(hi / group) * hd;  // [T, hd] stride ks
      const float* vb = v + size_t(bi) * t * ks + size_t(hi / group) * hd;
      float* p = probs + (size_t(bi) * h + hi) * t * t;                     // [T, T]
      Gemm(t, t, hd, scale, qb, qs, kb, ks, BLayout::kNK, p, t, 1);
      for (int i = 0; i < t; ++i) {
        float* row = p + size_t(i) * t;
        float mx = row[0];
        for (int j = 1; j <= i; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int j = 0; j <= i; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = float(1.0 / sum);
        for (int j = 0; j <= i; ++j) row[j] *= inv;
        std::fill(row + i + 1, row + t, 0.0f);
      }
      float* ob = out + size_t(bi) * t * qs + size_t(hi) * hd;
      Gemm(t, hd, t, 1.0f, p, t, vb, ks, BLayout::kKN, ob, qs, 1);
    }
  });
}

void AttentionBackward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                       int b, int t, int h, int kv, int hd, float* dq, float* dk, float* dv) {
  const int qs = h * hd, ks = kv * hd, group = h / kv;
  const float scale = 1.0f / std::sqrt(float(hd));
  std::fill(dk, dk + size_t(b) * t * ks, 0.0f);
  std::fill(dv, dv + size_t(b) * t * ks, 0.0f);
  // One item per (sequence, KV head): the query heads sharing it add into its dK/dV in head order.
  const int threads = std::min(NumThreads(), b * kv);
  std::vector<std::vector<float>> scratch(size_t(std::max(threads, 1)));  // per thread: ds, pt, tmp
  ParallelFor(b * kv, threads, [&](int item, int tid) {
    const int bi = item / kv, g = item % kv;
    std::vector<float>& buf = scratch[size_t(tid)];
    buf.resize(2 * size_t(t) * t + size_t(t) * hd);
    float* ds = buf.data();                   // [T, T]
    float* pt = ds + size_t(t) * t;           // [T, T] a transposed P or dS
    float* tmp = pt + size_t(t) * t;          // [T, hd]
    for (int hi = g * group; hi < (g + 1) * group; ++hi) {
      const size_t qoff = size_t(bi) * t * qs + size_t(hi) * hd;
      const size_t koff = size_t(bi) * t * ks + size_t(hi / group) * hd;
      const float* p = probs + (size_t(bi) * h + hi) * t * t;
      // dV[T, hd] += P^T · dO
      Transpose(p, t, t, t, pt);
      Gemm(t, hd, t, 1.0f, pt, t, dout + qoff, qs, BLayout::kKN, tmp, hd, 1);
      AddInto(tmp, t, hd, dv + koff, ks);
      // dP[T, T] = dO · V^T
      Gemm(t, t, hd, 1.0f, dout + qoff, qs, v + koff, ks, BLayout::kNK, ds, t, 1);
      // dS = P ⊙ (dP - rowsum(dP ⊙ P)), times the score scale
      for (int i = 0; i < t; ++i) {
        float* dr = ds + size_t(i) * t;
        const float* pr = p + size_t(i) * t;
        double dot = 0;
        for (int j = 0; j <= i; ++j) dot += double(dr[j]) * pr[j];
        for (int j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - float(dot)) * scale;
        std::fill(dr + i + 1, dr + t, 0.0f);
      }
      // dQ[T, hd] = dS · K;  dK[T, hd] += dS^T · Q
      Gemm(t, hd, t, 1.0f, ds, t, k + koff, ks, BLayout::kKN, dq + qoff, qs, 1);
      Transpose(ds, t, t, t, pt);
      Gemm(t, hd, t, 1.0f, pt, t, q + qoff, qs, BLayout::kKN, tmp, hd, 1);
      AddInto(tmp, t, hd, dk + koff, ks);
    }
  });
}

void SwiGluForward(const float* gate, const float* up, int64_t n, float* out) {
  ParallelForChunks(n, kElementChunk, NumThreads(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void SwiGluBackward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup) {
  // silu(g) = g s(g);  silu'(g) = s(g) (1 + g (1 - s(g))).
  ParallelForChunks(n, kElementChunk, NumThreads(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i], u = up[i], d = dout[i];
      const float s = 1.0f / (1.0f + std::exp(-g));
      dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
      dup[i] = d * g * s;
    }
  });
}

double CrossEntropy(float* logits, const int* targets, int n, int v, float* dlogits) {
  int counted = 0;
  for (int r = 0; r < n; ++r) counted += targets[r] >= 0;
  std::vector<double> row_loss(n, 0.0);
  ParallelFor(n, NumThreads(), [&](int r, int) {
    float* lr = logits + size_t(r) * v;
    const int tg = targets[r];
    float mx = lr[0];
    for (int j = 1; j < v; ++j) mx = std::max(mx, lr[j]);
    double sum = 0;
    for (int j = 0; j < v; ++j) sum += std::exp(double(lr[j] - mx));
    if (tg >= 0) {
      QL_CHECK(tg < v);
      row_loss[r] = std::log(sum) - double(lr[tg] - mx);
    }
    if (dlogits) {
      float* dr = dlogits + size_t(r) * v;
      if (tg < 0 || counted == 0) {
        std::fill(dr, dr + v, 0.0f);
        return;
      }
      const double inv = 1.0 / sum, w = 1.0 / counted;
      for (int j = 0; j < v; ++j) dr[j] = float(std::exp(double(lr[j] - mx)) * inv * w);
      dr[tg] -= float(w);
    }
  });
  double total = 0;
  for (int r = 0; r < n; ++r) total += row_loss[r];
  return counted ? total / counted : 0.0;
}

double KlToTeacher(float* logits, const float* teacher_probs, int n, int v, float* dlogits) {
  std::vector<double> row_loss(n, 0.0);
  ParallelFor(n, NumThreads(), [&](int r, int) {
    float* lr = logits + size_t(r) * v;
    const float* pr = teacher_probs + size_t(r) * v;
    float mx = lr[0];
    for (int j = 1; j < v; ++j) mx = std::max(mx, lr[j]);
    double sum = 0;
    for (int j = 0; j < v; ++j) sum += std::exp(double(lr[j] - mx));
    const double lse = std::log(sum) + mx;
    double kl = 0;
    for (int j = 0; j < v; ++j)
      if (pr[j] > 0) kl += double(pr[j]) * (std::log(double(pr[j])) - (double(lr[j]) - lse));
    row_loss[r] = kl;
    if (dlogits) {
      float* dr = dlogits + size_t(r) * v;
      const double inv = 1.0 / sum, w = 1.0 / n;
      for (int j = 0; j < v; ++j) dr[j] = float((std::exp(double(lr[j] - mx)) * inv - double(pr[j])) * w);
    }
  });
  double total = 0;
  for (int r = 0; r < n; ++r) total += row_loss[r];
  return n ? total / n : 0.0;
}

}  // namespace ql::train
