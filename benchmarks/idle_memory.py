"""Whether memory left idle for a few seconds costs more to touch again on this machine.

A grouped step leaves each slot's state (parameters, Adam moments) untouched while the other S - 1 slots step;
a lone seed's state is touched every step. This times one read-and-write pass over a buffer of the size of a
seed's state, right after the previous pass or after an idle gap, gaps interleaved round by round.

    python benchmarks/idle_memory.py --mb 512 --gaps 0,2,5 --rounds 8

Prints one JSON object: the pass times (s) for each gap and their medians.
"""

import argparse
import json
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=512)
    p.add_argument("--gaps", default="0,2,5", help="comma-separated idle seconds")
    p.add_argument("--rounds", type=int, default=8)
    args = p.parse_args(argv)
    try:
        gaps = [float(g) for g in args.gaps.split(",")]
    except ValueError:
        p.error(f"--gaps takes comma-separated seconds, not {args.gaps!r}")
    if args.mb < 1 or args.rounds < 1 or min(gaps) < 0:
        p.error("--mb and --rounds must be at least 1 and every gap at least 0")
    a = np.ones(args.mb * 2**20 // 8)

    def touch() -> float:
        t = time.perf_counter()
        np.add(a, 1.0, out=a)
        return time.perf_counter() - t

    touch()
    times = {g: [] for g in gaps}
    for _ in range(args.rounds):
        for g in gaps:
            touch()
            time.sleep(g)
            times[g].append(touch())
    print(json.dumps({"mb": args.mb, "times_s": {str(g): v for g, v in times.items()},
                      "median_s": {str(g): statistics.median(v) for g, v in times.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
