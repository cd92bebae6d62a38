#!/usr/bin/env python3
"""quantlab vs llama-perplexity for every llama.cpp weight type and mix on one model: bits/weight, quantlab's
PPL with FP32 fake quantization, quantlab's PPL with `activations: llamacpp` (--kv-fp16: plus kv_cache and
attention fp16), llama-perplexity's PPL (-fa off) on the file `quantlab export` writes for the same cell, and
wall times. Prints a Markdown table.

  scripts/llamacpp-ppl-table.py [--model M] [--data TEXT] [--ctx 256] [--chunks 8] [--threads 2]

Defaults: models/quantlab-tiny on its held-out text. llama.cpp from scripts/llama-cpp.sh (its cache), quantlab
from build/quantlab. Every quantlab cell uses baseline fp32, so the exported file holds exactly the cell's
weights (docs/gguf.md, "Export").
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl"]  # uniform 32-block types (--scheme)
MIXES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
         "IQ4_NL", "IQ4_XS"]


def run(cmd):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}")
    return p.stdout, time.monotonic() - t0


def quantlab_ppl(a, scheme, llamacpp):
    cmd = [a.quantlab, "eval", "--model", a.model, "--data", a.data, "--protocol", "llamacpp", "--ctx", str(a.ctx),
           "--chunks", str(a.chunks), "--baseline", "fp32", "--scheme", scheme, "--layer-windows", "1", "--json"]
    if llamacpp:
        cmd += ["--activations", "llamacpp"]
        if a.kv_fp16:
            cmd += ["--kv-cache", "fp16", "--attention", "fp16"]
    out, secs = run(cmd)
    j = json.loads(out.strip().splitlines()[-1])
    return j, secs


def llama_ppl(a, gguf):
    out, secs = run([a.llama_bin + "/llama-perplexity", "-m", gguf, "-f", a.data, "-c", str(a.ctx), "--chunks",
                     str(a.chunks), "-t", str(a.threads), "-fa", "off"])
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out)
    if not m:
        raise RuntimeError("no PPL in llama-perplexity output:\n" + out[-2000:])
    return float(m.group(1)), secs


def row(a, tmp, name, export_flag, scheme):
    gguf = os.path.join(tmp, name + ".gguf")
    run([a.quantlab, "export", "--model", a.model, export_flag, name, "--out", gguf])
    fq, t_fq = quantlab_ppl(a, scheme, False)
    lc, t_lc = quantlab_ppl(a, scheme, True)
    lp, t_lp = llama_ppl(a, gguf)
    os.remove(gguf)
    gap_fq, gap_lc = fq["ppl"] / lp - 1, lc["ppl"] / lp - 1
    print(f"| {name} | {fq['bits_per_weight']:.3f} | {fq['ppl']:.4f} | {lc['ppl']:.4f} | {lp:.4f} | "
          f"{gap_fq:+.2e} | {gap_lc:+.2e} | {t_fq:.1f} | {t_lc:.1f} | {t_lp:.1f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/quantlab-tiny"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantlab", default=os.path.join(ROOT, "build/quantlab"))
    ap.add_argument("--llama-bin", default=None, help="llama.cpp bin directory (default: scripts/llama-cpp.sh)")
    ap.add_argument("--only", nargs="*", help="a subset of the names below")
    ap.add_argument("--kv-fp16", action="store_true", help="llamacpp column: also fp16 K/V and attention inputs")
    a = ap.parse_args()
    if a.data is None:
        a.data = os.path.join(ROOT, "models/quantlab-tiny/heldout.txt")
    if a.llama_bin is None:
        a.llama_bin = subprocess.run([os.path.join(ROOT, "scripts/llama-cpp.sh")], stdout=subprocess.PIPE,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "f32.gguf")
        run([a.quantlab, "export", "--model", a.model, "--scheme", "f32", "--out", f32])
        base, t_base = llama_ppl(a, f32)
        os.remove(f32)
        print(f"model {a.model}, text {a.data}, ctx {a.ctx}, {a.chunks} chunks, llama-perplexity -t {a.threads} -fa off; "
              f"F32: llama-perplexity PPL {base:.4f} ({t_base:.1f} s)\n")
        print("| type / mix | bits/w | PPL quantlab FP32 fake-quant | PPL quantlab act: llamacpp | PPL llama-perplexity "
              "| gap fake-quant | gap llamacpp | s fake-quant | s llamacpp | s llama-perplexity |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for t in TYPES:
            if not a.only or t in a.only:
                row(a, tmp, t, "--scheme", t)
        for m in MIXES:
            if not a.only or m in a.only:
                # Q2_K, Q6_K, Q8_0, IQ4_NL, IQ4_XS are block names too: as sweep presets their mixes are mix:NAME.
                row(a, tmp, m, "--preset", "mix:" + m)


if __name__ == "__main__":
    sys.exit(main())
