#!/usr/bin/env python3
# Developer tool (not run by CI or the build): writes the golden fixtures for tests/kernels/gguf_blocks_test.cc
# from ggml's own C reference (libggml-base built from source) and cross-checks them with gguf-py.
# See README.md in this directory for the exact steps. Usage:
#   python make_fixtures.py --ggml-lib /tmp/ggml-build/src/libggml-base.so [--out DIR]
import argparse
import ctypes
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants as gq

# name -> (ggml type, block elems, block bytes, number of generic input blocks)
TYPES = {
    "q8_0": (T.Q8_0, 32, 34, 12),
    "q4_0": (T.Q4_0, 32, 18, 12),
    "q4_1": (T.Q4_1, 32, 20, 12),
    "q5_0": (T.Q5_0, 32, 22, 12),
    "q5_1": (T.Q5_1, 32, 24, 12),
    "q4_k": (T.Q4_K, 256, 144, 24),
    "q6_k": (T.Q6_K, 256, 210, 24),
}
GGML_SUFFIX = {"q8_0": "q8_0", "q4_0": "q4_0", "q4_1": "q4_1", "q5_0": "q5_0", "q5_1": "q5_1",
               "q4_k": "q4_K", "q6_k": "q6_K"}
# byte offsets of the fp16 fields in a block (to make random blocks have finite, sane scales)
HALF_FIELDS = {"q8_0": [0], "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q4_k": [0, 2],
               "q6_k": [208]}


def inputs_32(rng):
    """12 blocks of 32 with the edge cases of the 32-element formats."""
    j = np.arange(32, dtype=np.float32)
    b = []
    b.append(np.zeros(32, np.float32))                                   # all zero
    x = np.zeros(32, np.float32); x[5] = 3.7; b.append(x)                # one outlier
    b.append((j - 15.5) / 8)                                             # symmetric ramp
    b.append(0.1 + j * 0.05)                                             # all positive ramp (min > 0)
    b.append(-np.abs(rng.normal(0, 1, 32)) - 0.25)                       # all negative
    b.append(rng.normal(0, 1, 32))                                       # gaussian
    b.append(rng.normal(0, 0.02, 32))                                    # weight-like scale
    b.append(rng.normal(0, 1e-6, 32))                                    # tiny: fp16-subnormal scales
    b.append(rng.integers(-8, 9, 32) * 0.5)                              # many rounding ties
    b.append(np.full(32, 1.25))                                          # constant
    x = rng.normal(0, 0.3, 32); x[3] = -2.0; x[20] = 2.0; b.append(x)    # +-max tie: first wins
    b.append(rng.normal(0, 1000, 32))                                    # large
    return np.concatenate(b).astype(np.float32)


def inputs_256(rng):
    """24 super-blocks of 256 with the edge cases of the k-quants (sub-blocks of 32 / 16)."""
    b = []
    b.append(np.zeros(256, np.float32))                                  # all zero
    b.append(rng.normal(0, 1, 256))                                      # gaussian
    b.append(rng.normal(0, 0.02, 256))                                   # weight-like
    x = rng.normal(0, 1, 256) * np.repeat(np.logspace(-3, 1, 16), 16); b.append(x)  # scales vary per 16
    b.append(rng.uniform(0.5, 2.0, 256))                                 # all positive (min clamped to 0)
    x = rng.normal(0, 0.01, 256); x[77] = 5.0; b.append(x)               # one outlier
    x = rng.normal(0, 1, 256); x[32:96] = 0; x[200:216] = 0; b.append(x)  # zero sub-blocks
    b.append(rng.normal(0, 1e-5, 256))                                   # tiny
    for k in range(16):                                                  # 16 more: varied distributions
        s = float(np.exp(rng.uniform(-6, 2)))
        b.append([rng.normal(0, s, 256), rng.laplace(0, s, 256), rng.uniform(-s, s, 256),
                  rng.standard_t(3, 256) * s][k % 4] + (s if k % 5 == 4 else 0.0))
    return np.concatenate(b).astype(np.float32)


def qx_winning_steps(x):
    """For each row of x [N, 16]: which candidate is = -9..9 gave the codes make_qx_quants(16, 32,
    rmse_type 1) keeps (0 = the initial one). Replays ggml's float32 arithmetic in the same order (sequential sums), vectorized
    over rows. Used only to *choose* interesting inputs; expected outputs always come from ggml itself."""
    f = np.float32
    x = x.astype(f)
    mx = np.take_along_axis(x, np.argmax(np.abs(x), axis=1)[:, None], axis=1)[:, 0]

    def sums(iscale):
        slx = np.zeros(len(x), f)
        sl2 = np.zeros(len(x), f)
        codes = np.zeros(x.shape, f)
        for i in range(16):
            xi = x[:, i]
            l = np.clip(np.round(iscale * xi), -32, 31).astype(f)  # nearest_int rounds half to even
            codes[:, i] = l
            w = xi * xi
            slx = slx + w * xi * l
            sl2 = sl2 + w * l * l
        return slx, sl2, codes

    slx, sl2, best_l = sums(f(-32) / mx)
    scale = np.where(sl2 != 0, slx / np.where(sl2 != 0, sl2, f(1)), f(0)).astype(f)
    best = scale * slx
    win = np.zeros(len(x), int)
    for is_ in range(-9, 10):
        if is_ == 0:
            continue
        slx, sl2, l = sums(-(f(32) + f(0.1) * f(is_)) / mx)
        better = (sl2 > 0) & (slx * slx > best * sl2)
        scale = np.where(better, slx / np.where(sl2 > 0, sl2, f(1)), scale).astype(f)
        best = np.where(better, scale * slx, best).astype(f)
        # rounding can let the same codes "win" again; only a win with new codes changes the result
        new_codes = better & np.any(l != best_l, axis=1)
        win = np.where(new_codes, is_, win)
        best_l = np.where(better[:, None], l, best_l)
    return win


def q6k_search_blocks(rng):
    """One super-block per candidate step is = -9..9 (except 0) of the Q6_K scale search: its first
    sub-block is one where that step wins, multiplied by 16 (a power of two, so the same step wins) to make
    it the sub-block of largest scale, which then sets d = fp16(scale/-128) directly, so even a tiny change
    of the winning scale shows in the bytes. The other 15 sub-blocks are ordinary candidates with amax
    within a factor e of 1."""
    cand = np.concatenate([rng.standard_t(3, (100000, 16)), rng.normal(0, 1, (100000, 16))])
    cand = cand / np.max(np.abs(cand), axis=1, keepdims=True) * np.exp(rng.uniform(-1, 1, (len(cand), 1)))
    cand = cand.astype(np.float32)
    win = qx_winning_steps(cand)
    steps = [k for k in range(-9, 10) if k != 0 and np.any(win == k)]
    print(f"  q6_k search blocks: winning steps found {steps}")
    fill = iter(range(len(cand)))
    out = []
    for k in steps:
        out.append(cand[np.flatnonzero(win == k)[0]] * np.float32(16))
        out += [cand[next(fill)] for _ in range(15)]
    return np.concatenate(out)


def random_blocks(rng, name, nblocks, block_bytes):
    """Random bytes with finite fp16 scales of either sign (exercises every code and scale bit)."""
    raw = rng.integers(0, 256, (nblocks, block_bytes), dtype=np.uint8)
    for off in HALF_FIELDS[name]:
        h = (rng.uniform(1e-3, 0.2, nblocks) * rng.choice([-1, 1], nblocks)).astype(np.float16)
        raw[:, off:off + 2] = h.view(np.uint8).reshape(nblocks, 2)
    return raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml-lib", required=True, help="path of libggml-base.so built from ggml source")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    lib = ctypes.CDLL(args.ggml_lib)
    rng = np.random.default_rng(20261123)

    for name, (qt, be, bb, nblocks) in TYPES.items():
        x = inputs_32(rng) if be == 32 else inputs_256(rng)
        if name == "q6_k":
            x = np.concatenate([x, q6k_search_blocks(rng)])
        nblocks = x.size // be  # q6_k: 24 + one per winning search step found
        n = x.size
        quant = getattr(lib, f"quantize_row_{GGML_SUFFIX[name]}_ref")
        dequant = getattr(lib, f"dequantize_row_{GGML_SUFFIX[name]}")
        quant.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        dequant.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]

        q = np.zeros(nblocks * bb, np.uint8)
        quant(x.ctypes.data, q.ctypes.data, n)
        y = np.zeros(n, np.float32)
        dequant(q.ctypes.data, y.ctypes.data, n)

        n_rand = min(nblocks, 12)
        rb = random_blocks(rng, name, n_rand, bb).reshape(-1)
        ry = np.zeros(n_rand * be, np.float32)
        dequant(rb.ctypes.data, ry.ctypes.data, n_rand * be)

        # Cross-check against gguf-py's independent numpy implementation where it has one.
        try:
            q_py = gq.quantize(x.reshape(1, -1), qt).reshape(-1)
            assert np.array_equal(q_py, q), f"{name}: gguf-py quantize differs from ggml"
            py_q = "quantize+dequantize"
        except NotImplementedError:
            py_q = "dequantize only"
        for blocks, ref in ((q, y), (rb, ry)):
            y_py = gq.dequantize(blocks.reshape(1, -1), qt).reshape(-1).astype(np.float32)
            assert np.array_equal(y_py.view(np.uint32), ref.view(np.uint32)), f"{name}: gguf-py dequant differs"

        x.tofile(os.path.join(args.out, f"{name}.input.f32"))
        q.tofile(os.path.join(args.out, f"{name}.quant.bin"))
        y.tofile(os.path.join(args.out, f"{name}.dequant.f32"))
        rb.tofile(os.path.join(args.out, f"{name}.rand_blocks.bin"))
        ry.tofile(os.path.join(args.out, f"{name}.rand_dequant.f32"))
        print(f"{name}: {nblocks} blocks of {be}; gguf-py agrees ({py_q})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
