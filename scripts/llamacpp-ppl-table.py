#!/usr/bin/env python3
"""quantlab vs llama-perplexity for every llama.cpp weight type and mix on one model: bits/weight; quantlab's
PPL and KLD with FP32 fake quantization and with `activations: llamacpp`; llama-perplexity's PPL and KLD on the
file `quantlab export` writes for the same cell (KLD against llama-perplexity's own F32 run of the same model);
wall and CPU seconds of every run. Prints a Markdown table (rows as they finish).

  scripts/llamacpp-ppl-table.py [--model M] [--data TEXT] [--ctx 256] [--chunks 8] [--threads 2] [--only ...]
                                [--out TABLE.md] [--work DIR] [--keep NAME ...]

With --out, the header and every row are appended to TABLE.md as each finishes (a kill loses at most the row
in progress), and a rerun with the same --out skips the rows already there (resume). --work keeps the F32
file's llama-perplexity logits (the KLD base) in DIR, so a resumed run does not redo the F32 run; --keep also
leaves the exported GGUFs of the named rows there. With --work, quantlab's FP32 baseline is also computed once and
cached there (`eval --cache-dir`), so each quantlab time is the cell's own cost, like llama-perplexity's
against its stored KLD base; without it every eval computes its baseline again.

Defaults: models/quantlab-tiny on its held-out text. llama.cpp from scripts/llama-cpp.sh (its cache), quantlab
from build/quantlab. Every quantlab cell uses baseline fp32, so the exported file holds exactly the cell's
weights (docs/gguf.md, "Export"). llama-perplexity runs with `-fa off -ctk f32 -ctv f32` (--llama-flags):
llama.cpp's defaults (F16 K/V cache, flash attention) round attention inputs that `activations: llamacpp` does
not model (docs/gguf.md, "Which llama.cpp run is compared").
"""
import argparse, json, os, re, resource, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl"]  # uniform 32-block types (--scheme)
MIXES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
         "IQ4_NL", "IQ4_XS"]
LLAMA_FLAGS = "-fa off -ctk f32 -ctv f32"


def run(cmd, log=None):
    """Runs cmd; returns (stdout, wall s, CPU s = user + sys of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if log:
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + f"\n{p.stdout}\n{p.stderr}\n[wall {wall:.1f} s, cpu {cpu:.1f} s, "
                    f"load {os.getloadavg()[0]:.1f}]\n")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return p.stdout + p.stderr, wall, cpu


def quantlab_eval(a, flag, name, llamacpp):
    cmd = [a.quantlab, "eval", "--model", a.model, "--data", a.data, "--protocol", "llamacpp", "--ctx", str(a.ctx),
           "--chunks", str(a.chunks), "--baseline", "fp32", "--layer-windows", "1", "--json"]
    cmd += ["--scheme", name] if flag == "--scheme" else ["--scheme", "mix:" + name]
    if llamacpp:
        cmd += ["--activations", "llamacpp"]
    if a.work:  # the FP32 baseline is computed once and read back, as llama-perplexity reads its KLD base
        cmd += ["--cache-dir", os.path.join(a.work, "baseline-cache")]
    out, wall, cpu = run(cmd, a.log)
    j = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    return j, wall, cpu


def llama_perplexity(a, gguf, kld_base, write_base=False):
    """PPL (and KLD against kld_base unless write_base) of llama-perplexity on gguf."""
    cmd = [a.llama_bin + "/llama-perplexity", "-m", gguf, "-c", str(a.ctx), "--chunks", str(a.chunks),
           "-t", str(a.threads)] + a.llama_flags.split()
    if write_base:
        cmd += ["-f", a.data, "--kl-divergence-base", kld_base]
    else:
        cmd += ["--kl-divergence-base", kld_base, "--kl-divergence"]
    for attempt in range(2):
        out, wall, cpu = run(cmd, a.log)
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", out) or re.search(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", out)
        if m:
            break
        # llama.cpp's log thread can lose the last lines when the process exits under heavy load: run again.
        if attempt == 1:
            raise RuntimeError("no PPL in llama-perplexity output:\n" + out[-2000:])
    k = re.search(r"Mean\s+KLD:\s*(-?[0-9.]+)", out)
    return float(m.group(1)), (float(k.group(1)) if k else None), wall, cpu


def emit(a, line):
    """Prints line and appends it to --out (if given) at once."""
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")


def done_rows(a):
    """Names of the rows --out already holds (first cell of each table row)."""
    if not a.out or not os.path.exists(a.out):
        return set()
    with open(a.out) as f:
        return {l.split("|")[1].strip() for l in f if l.startswith("| ") and not l.startswith("| type")}


def row(a, tmp, kld_base, name, flag):
    gguf = os.path.join(tmp, name + ".gguf")
    run([a.quantlab, "export", "--model", a.model, flag, name, "--out", gguf], a.log)
    fq, w_fq, c_fq = quantlab_eval(a, flag, name, False)
    lc, w_lc, c_lc = quantlab_eval(a, flag, name, True)
    lp, lkld, w_lp, c_lp = llama_perplexity(a, gguf, kld_base)
    if name not in (a.keep or []):
        os.remove(gguf)
    emit(a, f"| {name} | {fq['bits_per_weight']:.3f} | {fq['ppl']:.4f} | {lc['ppl']:.4f} | {lp:.4f} | "
          f"{fq['ppl'] / lp - 1:+.1e} | {lc['ppl'] / lp - 1:+.1e} | {fq['kld_mean']:.5f} | {lc['kld_mean']:.5f} | "
          f"{lkld:.5f} | {w_fq:.0f} / {c_fq:.0f} | {w_lc:.0f} / {c_lc:.0f} | {w_lp:.0f} / {c_lp:.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/quantlab-tiny"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantlab", default=os.path.join(ROOT, "build/quantlab"))
    ap.add_argument("--llama-bin", default=None, help="llama.cpp bin directory (default: scripts/llama-cpp.sh)")
    ap.add_argument("--llama-flags", default=LLAMA_FLAGS, help=f"llama-perplexity flags (default: {LLAMA_FLAGS})")
    ap.add_argument("--only", nargs="*", help="a subset of the names below")
    ap.add_argument("--log", default=None, help="append every command and its output to this file")
    ap.add_argument("--out", default=None, help="append the table to this file row by row; skip rows it holds")
    ap.add_argument("--work", default=None, help="directory for the F32 KLD base and --keep files (default: temp)")
    ap.add_argument("--keep", nargs="*", help="rows whose exported GGUF stays in --work")
    a = ap.parse_args()
    if a.data is None:
        a.data = os.path.join(ROOT, "models/quantlab-tiny/heldout.txt")
    if a.llama_bin is None:
        a.llama_bin = subprocess.run([os.path.join(ROOT, "scripts/llama-cpp.sh")], stdout=subprocess.PIPE,
                                     text=True, check=True).stdout.strip().splitlines()[-1]
    done = done_rows(a)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.work or scratch
        os.makedirs(tmp, exist_ok=True)
        f32, kld_base = os.path.join(tmp, "f32.gguf"), os.path.join(tmp, "f32.kld")
        if not os.path.exists(kld_base):
            run([a.quantlab, "export", "--model", a.model, "--scheme", "f32", "--out", f32], a.log)
            base, _, w_base, c_base = llama_perplexity(a, f32, kld_base, write_base=True)
            os.remove(f32)
            emit(a, f"model {a.model}, text {a.data}, ctx {a.ctx}, {a.chunks} chunks, llama-perplexity -t "
                    f"{a.threads} {a.llama_flags}; F32: llama-perplexity PPL {base:.4f} ({w_base:.0f} s wall / "
                    f"{c_base:.0f} CPU-s)\n")
        if not done:
            emit(a, "| type / mix | bits/w | PPL fake-quant | PPL act: llamacpp | PPL llama-perplexity "
                    "| gap fake-quant | gap llamacpp | KLD fake-quant | KLD act: llamacpp | KLD llama-perplexity "
                    "| s fake-quant (wall / CPU) | s llamacpp | s llama-perplexity |")
            emit(a, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        todo = [(t, "--scheme") for t in TYPES] + [(m, "--preset") for m in MIXES]
        for name, flag in todo:
            # Q2_K, Q6_K, Q8_0, IQ4_NL, IQ4_XS are block names too: as sweep presets their mixes are mix:NAME.
            if (not a.only or name in a.only) and name not in done:
                try:
                    row(a, tmp, kld_base, name, flag)
                except RuntimeError as e:  # one failed row is reported and the table goes on (rerun to retry)
                    print(f"row {name} failed: {e}", file=sys.stderr, flush=True)

if __name__ == "__main__":
    sys.exit(main())
