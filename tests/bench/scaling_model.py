#!/usr/bin/env python3
"""scaling_model.py - the sweep-time and memory model of docs/SCALING.md (issue 25).

For a rating set of U users, I items and R ratings at k factors, an ALS sweep (both halves) on
N nodes of c ranks (one per core) costs:
  compute  2 R b + (U + I) a  core-seconds, spread over N c cores, where a rating costs
           b = d (d + 1) / G seconds (the Gram update, d = k + 1 with the biases) and a row a
           (its solve and overhead), both measured by tests/bench/bench_rowsolve on this machine
           (G and a per k below, one core, median of 5);
  exchange per node and sweep, received from other nodes, at W bytes/s per node and L seconds
           per message:
    replicated  (today)   c * 4 d (U + I) (N - 1) / N    every rank receives the whole model
    node-shared           4 d (U + I) (N - 1) / N        one copy per node, leaders exchange
    out-block             c * 4 d (T_u(P) + T_i(P))      each rank receives only the rows its
                          ratings touch: T_i(P) = I (1 - exp(-R / (P I))) items for a rank's
                          R / P ratings (uniform ratings: an upper bound; popular items make it
                          smaller) and likewise T_u users; P = N c ranks
    shared + out-block    4 d (T_u(N) + T_i(N))          one copy per node, and the leaders
                          exchange only the rows the node's ratings touch
  latency  replicated: 2 (N c - 1) L (a ring allgather per half-sweep); node-shared and
           shared + out-block: 2 (N - 1) L; out-block: 2 (N c - 1) L (every pair may exchange).
Memory per node (factors only, 4 d bytes a row; ratings add 24 R / N for the two CSR copies):
    replicated c * 4 d (U + I); node-shared 4 d (U + I); out-block c * 4 d (own + T_u + T_i).
The exchange overlaps nothing (incremf exchanges after each half's solve), so a sweep is compute
+ exchange + latency. Intra-node copies are left out (memory bandwidth, not the network).

Usage: scaling_model.py [CORES_PER_NODE] [GBIT_PER_S] [LATENCY_US]   (defaults 64 100 2)
"""
import math
import sys

# Measured 2026-12-07 on this 2-vCPU Zen 4 VM, one thread: bench_rowsolve (20k rows, mean 97.5
# ratings a row, power-law counts): Gram GF/s and whole seconds per 20k rows.
MEASURED = {64: (107.5, 0.182), 128: (116.8, 0.804)}
MEAN_N = 97.5

SETS = [  # name, users, items, ratings (the published counts)
    ("MovieLens 25M", 162541, 59047, 25000095),
    ("Netflix Prize", 480189, 17770, 100480507),
    ("Yahoo! Music R2", 1823179, 136736, 717872016),
    ("Amazon reviews 2018", 43_000_000, 15_000_000, 233_100_000),
]


def per_rating_row(k):
    g, whole = MEASURED[k]
    b = k * (k + 1) / (g * 1e9)           # the bench has no bias column: d = k there
    a = whole / 20000 - MEAN_N * b         # the rest of a row's cost
    return b * (k + 2) / k, a              # with biases d = k + 1: d (d + 1) = (k + 1)(k + 2)


def model(U, I, R, k, N, c, W, L):
    d = k + 1
    b, a = per_rating_row(k)
    P = N * c
    compute = (2 * R * b + (U + I) * a) / P
    frac = (N - 1) / N
    def touched(n, parts):
        return n * (1 - math.exp(-R / (parts * n)))
    Tu, Ti = touched(U, P), touched(I, P)
    Tun, Tin = touched(U, N), touched(I, N)
    rep_bytes = c * 4 * d * (U + I) * frac
    shr_bytes = 4 * d * (U + I) * frac
    out_bytes = c * 4 * d * (Tu + Ti) * frac
    so_bytes = 4 * d * (Tun + Tin) * frac
    t = {
        "replicated": compute + rep_bytes / W + 2 * (P - 1) * L,
        "node-shared": compute + shr_bytes / W + 2 * (N - 1) * L,
        "out-block": compute + out_bytes / W + 2 * (P - 1) * L,
        "shared+out": compute + so_bytes / W + 2 * (N - 1) * L,
    }
    mem = {
        "replicated": c * 4 * d * (U + I),
        "node-shared": 4 * d * (U + I),
        "out-block": c * 4 * d * ((U + I) / P + Tu + Ti),
        "shared+out": 4 * d * ((U + I) / N + Tun + Tin),
    }
    return compute, t, mem


KINDS = ("replicated", "node-shared", "out-block", "shared+out")


def main():
    c = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    gbit = float(sys.argv[2]) if len(sys.argv) > 2 else 100
    lat = float(sys.argv[3]) if len(sys.argv) > 3 else 2
    W, L = gbit * 1e9 / 8, lat * 1e-6
    nodes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    print("ALS sweep seconds (both halves) on N nodes of %d ranks (one per core), %g Gb/s per node, %g us a "
          "message; (speed-up over one node); factor GB per node in brackets\n" % (c, gbit, lat))
    for name, U, I, R in SETS:
        for k in (64, 128):
            print("%s: U %d, I %d, R %d; k = %d" % (name, U, I, R, k))
            print("%5s %9s " % ("nodes", "compute") + " ".join("%27s" % x for x in KINDS))
            base = None
            for N in nodes:
                comp, t, mem = model(U, I, R, k, N, c, W, L)
                base = base or t
                cells = ["%7.3f (%5.1fx) [%7.1f]" % (t[x], base[x] / t[x], mem[x] / 1e9) for x in KINDS]
                print("%5d %9.3f " % (N, comp) + " ".join("%27s" % x for x in cells))
            print()


if __name__ == "__main__":
    main()
