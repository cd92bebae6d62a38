#!/usr/bin/env python3
# Replays `quantlab search`'s refinement (harness/sweep/search_refine.h) offline on the tables that
# bench/sensitivity-scan.sh leaves in OUT (adaptive.json: the adaptive scan, prefix.json: the full scan):
# for each z and price slack, how many options the five bench searches re-measure, and whether each
# choice is then the full scan's. RULE is `paired` (the default rule: a unit's options compared on the
# windows both ran, from the cells' per-token "kld" arrays in OUT/adaptive and OUT/prefix; needs h5py)
# or `unpaired` (each option's own interval, `search --refine-unpaired`). Also prints the windows the
# re-measured options would run if a refined cell resumed from its adaptive windows instead of running
# all of them (not built; an estimate of what that would save). A bench tool (numpy), not a test; the DP
# is the exact one of SolveKnapsack in buckets of the gcd of all options' bytes.
#   bench/sensitivity-refine-replay.py OUT Z[,Z...] SLACK[,SLACK...] [paired|unpaired]
import json, math, sys
import numpy as np
out = sys.argv[1]
rule = sys.argv[4] if len(sys.argv) > 4 else 'paired'
A = {(r['unit'], r['scheme']): r for r in json.load(open(f'{out}/adaptive.json'))['rows']}
F = {(r['unit'], r['scheme']): r for r in json.load(open(f'{out}/prefix.json'))['rows']}
units = []
for r in json.load(open(f'{out}/prefix.json'))['rows']:
    if r['unit'] not in [u[0] for u in units]: units.append((r['unit'], r['baseline_bytes']))
schemes = sorted({k[1] for k in F})
numel = sum(b // 2 for _, b in units)
tot = json.load(open(f'{out}/adaptive.json'))['total_windows']
M64 = 2**64 - 1
def adaptive_order(n, seed):  # harness/sweep/cell_eval.cc AdaptiveOrder: Fisher-Yates driven by SplitMix64
    st, o = (seed ^ 0x5eed5eed5eed5eed) & M64, list(range(n))
    for i in range(n - 1, 0, -1):
        st = (st + 0x9e3779b97f4a7c15) & M64
        z = ((st ^ (st >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        j = (z ^ (z >> 31)) % (i + 1); o[i], o[j] = o[j], o[i]
    return o
ORDER = adaptive_order(tot, 0)  # the bench's experiment seed
def window_kld(store, cell_id, ran):  # {window: KLD sum}; the windows' scored tokens are equal here
    import h5py
    k = np.asarray(h5py.File(f'{out}/{store}/arrays/{cell_id}.h5')['kld'], dtype=np.float64)
    wins = sorted(ORDER[:ran]) if ran < tot else list(range(tot))
    return dict(zip(wins, k.reshape(ran, -1).sum(1))), len(k) // ran
def opts_for(rel_se, z):
    o = []
    for u, bb in units:
        l = [dict(s='', b=bb, c=0.0, sp=0.0, ex=True, w={i: 0.0 for i in range(tot)}, T=1, n0=tot)]
        for s in schemes:
            a = A[(u, s)]
            ex = a['eval_windows'] >= tot
            c = max(0.0, a['kld_mean'])
            x = dict(s=s, b=a['bytes'], c=c, sp=0 if ex else z * max(rel_se * c, a['kld_se']), ex=ex, full=max(0.0, F[(u, s)]['kld_mean']), n0=a['eval_windows'])
            if rule == 'paired':
                x['w'], x['T'] = window_kld('adaptive', a['cell_id'], a['eval_windows'])
                x['fw'], _ = window_kld('prefix', F[(u, s)]['cell_id'], tot)
            l.append(x)
        o.append(l)
    return o
def gcd_all(o):
    g = 0
    for l in o:
        for x in l: g = math.gcd(g, x['b'])
    return g
def knap(o, max_bytes, max_kld):
    g = gcd_all(o)
    top = sum(max(x['b'] for x in l) // g for l in o)
    best = np.full(top + 1, np.inf); best[0] = 0
    frm = []
    for l in o:
        nxt = np.full(top + 1, np.inf); arg = np.full(top + 1, -1, dtype=np.int8)
        for k, x in enumerate(l):
            sh = x['b'] // g
            cand = np.full(top + 1, np.inf); cand[sh:] = best[:top + 1 - sh] + x['c']
            m = cand < nxt; nxt[m] = cand[m]; arg[m] = k
        best = nxt; frm.append(arg)
    if max_kld >= 0:
        idx = np.nonzero(best <= max_kld)[0]; end = idx[0]
    else:
        lim = max_bytes // g; b2 = best[:lim + 1]; end = int(np.argmin(b2))
    pick = [0] * len(o); e = end
    for u in range(len(o) - 1, -1, -1):
        k = int(frm[u][e]); pick[u] = k; e -= o[u][k]['b'] // g
    return pick
def lag_pick(o, lam):
    return [min(range(len(l)), key=lambda k: (l[k]['c'] + lam * l[k]['b'], k)) for l in o]
def tot_of(o, p): return sum(o[u][p[u]]['b'] for u in range(len(o))), sum(o[u][p[u]]['c'] for u in range(len(o)))
def lam_of(o, p, by_budget, max_kld):
    b0, c0 = tot_of(o, p)
    okf = (lambda lam: tot_of(o, lag_pick(o, lam))[0] <= b0) if by_budget else (lambda lam: tot_of(o, lag_pick(o, lam))[1] <= max_kld)
    lo, hi = math.log(1e-18), math.log(1e6)
    if by_budget:
        if okf(0): return 0
        for _ in range(80):
            mid = (lo + hi) / 2
            if okf(math.exp(mid)): hi = mid
            else: lo = mid
        return math.exp(hi)
    for _ in range(80):
        mid = (lo + hi) / 2
        if okf(math.exp(mid)): lo = mid
        else: hi = mid
    return math.exp(lo)
def beat(k, p, lam): return k['c'] - k['sp'] + lam * k['b'] <= p['c'] + p['sp'] + lam * p['b']
def paired_beat(k, p, lam, slack, z):  # search_refine.cc PairedCanBeat
    if k['c'] + lam * k['b'] <= p['c'] + lam * p['b']: return True
    common = sorted(set(k['w']) & set(p['w'])); n = len(common); T = max(k['T'], p['T'])
    d = np.array([k['w'][i] - p['w'][i] for i in common]); D = d.sum() / (n * T)
    se = math.sqrt(max(0.0, 1 - n / tot) / n * ((d - D * T) ** 2).sum() / (n - 1)) / T
    return any(D - z * se + l2 * (k['b'] - p['b']) <= 0 for l2 in (lam / slack, lam * slack))
def decision(o, p, lam, slack, z):
    need = []
    for u, l in enumerate(o):
        pk = l[p[u]]
        if rule == 'paired':
            riv = [k for k in range(len(l)) if k != p[u] and paired_beat(l[k], pk, lam, slack, z)]
        else:
            riv = [k for k in range(len(l)) if k != p[u] and (beat(l[k], pk, lam / slack) or beat(l[k], pk, lam * slack))]
        if not riv: continue
        for k in riv + [p[u]]:
            if not l[k]['ex']: need.append((u, k))
    return need
searches = [(4.25, -1), (4.5, -1), (4.75, -1), (-1, 0.02), (-1, 0.05)]
def fullopts():
    o = opts_for(0.15, 0)
    for l in o:
        for x in l[1:]: x['c'] = x['full']; x['ex'] = True; x['sp'] = 0
    return o
fo = fullopts()
want = [knap(fo, int(math.floor(b * numel / 8)) if b > 0 else -1, t) for b, t in searches]
for z in [float(a) for a in sys.argv[2].split(',')]:
    for slack in [float(a) for a in sys.argv[3].split(',')]:
        o = opts_for(0.15, z)
        refined = set(); same = []
        for (b, t), w in zip(searches, want):
            mb = int(math.floor(b * numel / 8)) if b > 0 else -1
            while True:
                p = knap(o, mb, t)
                lam = lam_of(o, p, t < 0, t)
                need = decision(o, p, lam, slack, z)
                if not need: break
                for u, k in need:
                    x = o[u][k]; x['c'] = x['full']; x['ex'] = True; x['sp'] = 0; x['w'] = x.get('fw'); refined.add((u, k))
            same.append(p == w)
        alone = []
        for (b, t), w in zip(searches, want):
            o2 = opts_for(0.15, z); r2 = set(); mb = int(math.floor(b * numel / 8)) if b > 0 else -1
            while True:
                p = knap(o2, mb, t); lam = lam_of(o2, p, t < 0, t); need = decision(o2, p, lam, slack, z)
                if not need: break
                for u, k in need:
                    x = o2[u][k]; x['c'] = x['full']; x['ex'] = True; x['sp'] = 0; x['w'] = x.get('fw'); r2.add((u, k))
            alone.append(len(r2))
        resumed = sum(tot - o[u][k]['n0'] for u, k in refined)
        print(f"{rule} z={z} slack={slack}: refined {len(refined)} of {len(units)*len(schemes)} "
              f"({len(refined) * tot} windows; resumed from the adaptive windows: {resumed}); same choice {same}; alone {alone}")
