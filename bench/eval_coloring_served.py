"""Graph colouring through the server, as a user sees it: fresh graphs, sequential /solve requests.

Receives a colouring checkpoint (default checkpoints/graph-coloring-8), served alone by
`python -m server` (bench/serverproc.py `serve_alone`). Draws --graphs fresh G(n, p) graphs
with this script's own generator (Python's `random`, not tasks/), keeps the 3-colourable ones (own
brute force), and asks /solve for each at width 1 and at --width. Hands back JSON (printed, and
--out): a valid colouring at width 1 and within --width (checked here again, not only the server's
`valid` flag), distinct valid colourings per graph, `false_valid` (candidates the server
flags valid that this script's check rejects), latency p50 / p90. Knows nothing of training.

    .venv/bin/python bench/eval_coloring_served.py --graphs 40 --width 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench.serverproc import NotReady, serve_alone  # noqa: E402

COLORS = 3


def proper(colors: list[int], edges: list[list[int]]) -> bool:
    return all(0 <= c < COLORS for c in colors) and all(colors[u] != colors[v] for u, v in edges)


def fresh_graphs(count: int, nodes: int, p: float, seed: int) -> list[list[list[int]]]:
    """G(nodes, p) edge lists that have a proper 3-colouring (brute force over 3^nodes colourings)."""
    rng = random.Random(seed)
    out: list[list[list[int]]] = []
    while len(out) < count:
        edges = [[u, v] for u in range(nodes) for v in range(u + 1, nodes) if rng.random() < p]
        if any(proper(list(c), edges) for c in itertools.product(range(COLORS), repeat=nodes)):
            out.append(edges)
    return out


def solve(http: httpx.Client, nodes: int, edges: list[list[int]], width: int, seed: int) -> dict:
    body = {
        "task": "graph_coloring",
        "puzzle": {"num_nodes": nodes, "edges": edges, "num_colors": COLORS},
        "width": width,
        "steps": 16,
        "seed": seed,
        "top_k": width,
    }
    response = http.post("/solve", json=body)
    response.raise_for_status()
    answer = response.json()
    checked = [proper(c["solution"]["colors"], edges) for c in answer["candidates"]]
    false_valid = sum(c["valid"] and not ok for c, ok in zip(answer["candidates"], checked, strict=True))
    return {"valid": any(checked), "distinct_valid": sum(checked), "false_valid": false_valid,
            "ms": answer["timing_ms"]["total"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "graph-coloring-8")
    ap.add_argument("--graphs", type=int, default=40)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--edge-prob", type=float, default=0.4)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026, help="of the graph generator")
    ap.add_argument("--threads", type=int, default=1, help="GRAM_TORCH_THREADS of the server")
    ap.add_argument("--compile", default="true", help="GRAM_COMPILE_STEP of the server: true | false")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    graphs = fresh_graphs(args.graphs, args.nodes, args.edge_prob, args.seed)
    try:
        with (
            serve_alone(args.checkpoint, args.threads, args.compile) as server,
            httpx.Client(base_url=server.url, timeout=300) as http,
        ):
            one = [solve(http, args.nodes, edges, 1, seed=i) for i, edges in enumerate(graphs)]
            wide = [solve(http, args.nodes, edges, args.width, seed=i) for i, edges in enumerate(graphs)]
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    wide_ms = [r["ms"] for r in wide]
    report = {
        "command": " ".join(sys.argv),
        "graphs": len(graphs),
        "valid_at_1": float(np.mean([r["valid"] for r in one])),
        f"valid_within_{args.width}": float(np.mean([r["valid"] for r in wide])),
        "distinct_valid_mean": float(np.mean([r["distinct_valid"] for r in wide])),
        "false_valid": sum(r["false_valid"] for r in one + wide),
        f"ms_p50_width_{args.width}": float(np.percentile(wide_ms, 50)),
        f"ms_p90_width_{args.width}": float(np.percentile(wide_ms, 90)),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
