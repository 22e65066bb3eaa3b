"""Control-plane cost of AstroKitKubeSpawner: prints one JSON object.

Runs the real spawner (KubeSpawner underneath, unmodified) against the in-memory Kubernetes
API server of ``tests/kubernetes`` over HTTP on 127.0.0.1, with its kubelet and operator
acting at once, so what is measured is the hub-side work of a spawn: profile resolution,
TLS credentials, the API round-trips and watches, KubeSpawner's polling - not image pulls or
pod scheduling, which a real cluster adds on top. Reported:

* sequential start and stop latency (median, max) over N users;
* API requests per start+stop cycle by verb (what one spawn costs the API server);
* M users starting concurrently: wall time and per-user latency;
* the time to make one server's TLS credentials (part of every start).

Usage::

    .venv/bin/python benchmarks/k8s_spawn.py            # N=10 sequential, M=20 concurrent
    .venv/bin/python benchmarks/k8s_spawn.py --quick    # N=2, M=3 (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "kubernetes"))

from k8s_fake_api import FakeApiServer, FakeKubernetes  # noqa: E402  (test infrastructure)
from k8s_helpers import make_spawner, start_server, use_kubeconfig  # noqa: E402

VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}


def _verb(method: str, path: str, watch: bool) -> str:
    if method != "GET":
        return VERBS[method]
    if watch:
        return "watch"
    # /namespaces/<ns>/<plural> and /<plural> are lists; one more segment is a get
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    named = len(rest) in (2, 4, 5) if rest[:1] == ["namespaces"] else len(rest) == 2
    return "get" if named else "list"


async def _cycle(kube: FakeKubernetes, user: str) -> tuple[float, float]:
    spawner = make_spawner(kube, user=user, user_options={"profile": "small"})
    t0 = time.perf_counter()
    await start_server(spawner, timeout=120)
    t1 = time.perf_counter()
    await asyncio.wait_for(spawner.stop(), 120)
    return t1 - t0, time.perf_counter() - t1


async def run(n_sequential: int, n_concurrent: int) -> dict:
    from astrokit_spawner.tls import make_credentials
    from kubespawner import KubeSpawner

    kube = FakeKubernetes(namespaces=("default", "jhub"), kubelet_delay=0, operator_delay=0)
    server = FakeApiServer(kube)
    kube.url = await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        use_kubeconfig(kube.url, Path(tmp) / "kubeconfig")
        try:
            await _cycle(kube, "warmup")  # reflectors and clients start once per hub
            starts, stops = [], []
            first = len(kube.requests_with_watch)
            for i in range(n_sequential):
                start, stop = await _cycle(kube, f"user{i}")
                starts.append(start)
                stops.append(stop)
            requests = kube.requests_with_watch[first:]
            by_verb = collections.Counter(_verb(m, p, w) for m, p, w in requests)

            spawners = [
                make_spawner(kube, user=f"crowd{i}", user_options={"profile": "small"})
                for i in range(n_concurrent)
            ]

            async def timed(spawner) -> float:
                t = time.perf_counter()
                await start_server(spawner, timeout=300)
                return time.perf_counter() - t

            t0 = time.perf_counter()
            latencies = await asyncio.gather(*(timed(s) for s in spawners))
            wall = time.perf_counter() - t0
            await asyncio.gather(*(s.stop() for s in spawners))
            leftovers = sorted(
                f"{res[1]}/{name}" for res, _, name in kube.objects if res[1] != "namespaces"
                and res[1] != "events"
            )  # fmt: skip
        finally:
            await KubeSpawner._stop_all_reflectors()
            await server.stop()

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(5):
            make_credentials(Path(tmp) / str(i), server_id=f"s{i}")
    tls_ms = (time.perf_counter() - t) / 5 * 1000

    def summary(values: list[float]) -> dict:
        return {
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
        }

    return {
        "benchmark": "k8s_spawn",
        "what": "hub-side spawn cost against the in-memory API server (no image pull/scheduling)",
        "sequential_users": n_sequential,
        "start": summary(starts),
        "stop": summary(stops),
        "api_requests_per_cycle": round(len(requests) / n_sequential, 1),
        "api_requests_per_cycle_by_verb": {
            verb: round(count / n_sequential, 1) for verb, count in sorted(by_verb.items())
        },
        "concurrent_users": n_concurrent,
        "concurrent_wall_s": round(wall, 3),
        "concurrent_start": summary(list(latencies)),
        "tls_credentials_ms": round(tls_ms, 2),
        "objects_left_after_stop": leftovers,
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--sequential", type=int, default=None)
    parser.add_argument("--concurrent", type=int, default=None)
    args = parser.parse_args()
    n_seq = args.sequential or (2 if args.quick else 10)
    n_conc = args.concurrent or (3 if args.quick else 20)
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(n_seq, n_conc))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
