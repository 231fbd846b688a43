"""``calib serve`` latency and throughput on this machine (127.0.0.1 only, bounded).

Run from the repository root::

    .venv/bin/python benchmarks/serve.py [--requests 400] [--clients 8] [--file-rows 100000] [--repeats 3]

Set-up (not timed): the artifact of ``benchmarks/inference.py`` (2 x 32 tanh, 5 fold models, 5
inputs, trained briefly on the bundled data) and a readings file of ``--file-rows`` rows, in a
temporary folder; ``calib serve`` runs in its own process (one uvicorn worker) on a free port of
127.0.0.1.

Measured:

1. Single-row JSON requests (``POST /models/bench/predict``, ``{"rows": [one reading]}``), one
   client, ``--requests`` requests in sequence: requests/s, p50 and p95 latency.
2. The same with ``--clients`` clients in parallel threads (``--requests`` each): requests/s,
   p95, errors (must be 0).
3. Upload of the ``--file-rows`` CSV (multipart), predictions CSV back: seconds (best of
   ``--repeats``), against :func:`calib.predict.predict_file` in-process on the same file; the
   bytes must equal ``calib predict``'s.

Prints the figures and one JSON line. Every loop is bounded in count and time; the server is
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    import httpx
    import pandas as pd

    from inference import setup

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--file-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        art, _x, csv, _final = setup(folder, 1000, args.file_rows)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "calib.cli", "serve", str(folder / "models"), "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("calib serve did not start")
                    time.sleep(0.2)
            reading = pd.read_csv(csv, nrows=1).iloc[0].to_dict()
            body = {"rows": [{k: v for k, v in reading.items() if isinstance(v, (int, float))}]}

            def client(n: int) -> tuple[list[float], int]:
                lat, errors = [], 0
                with httpx.Client(base_url=url, timeout=30) as c:
                    c.post("/models/bench/predict", json=body)  # warm: model loaded, connection open
                    for _ in range(n):
                        t = time.perf_counter()
                        r = c.post("/models/bench/predict", json=body)
                        lat.append(time.perf_counter() - t)
                        errors += r.status_code != 200
                return lat, errors

            t0 = time.perf_counter()
            one, err1 = client(args.requests)
            rps1 = len(one) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                parts = list(pool.map(client, [args.requests] * args.clients))
            wall = time.perf_counter() - t0
            many = [x for lat, _ in parts for x in lat]
            errn = sum(e for _, e in parts)
            rpsn = len(many) / wall

            from calib.predict import predict_file
            from calib.runtime import load_model

            model = load_model(art)
            ref = folder / "ref.csv"
            t_local = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                predict_file(model, csv, ref, force=True)
                t_local.append(time.perf_counter() - t)
            data = csv.read_bytes()
            t_up, same = [], True
            with httpx.Client(base_url=url, timeout=300) as c:
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    r = c.post("/models/bench/predict", files={"file": (csv.name, data)})
                    t_up.append(time.perf_counter() - t)
                    same &= r.status_code == 200 and r.content == ref.read_bytes()
        finally:
            proc.terminate()
            proc.wait(10)

    print(f"calib serve on 127.0.0.1, one uvicorn process, {os.cpu_count()} cores:")
    print(f"  single-row JSON, 1 client:      {rps1:7.0f} requests/s, p50 {pct(one, .5) * 1e3:6.1f} ms, "
          f"p95 {pct(one, .95) * 1e3:6.1f} ms, errors {err1}")
    print(f"  single-row JSON, {args.clients} clients:     {rpsn:7.0f} requests/s, p50 {pct(many, .5) * 1e3:6.1f} ms, "
          f"p95 {pct(many, .95) * 1e3:6.1f} ms, errors {errn}")
    print(f"  {args.file_rows:,}-row CSV upload -> predictions CSV: {min(t_up):.2f} s (predict_file in-process "
          f"{min(t_local):.2f} s); bytes equal calib predict's: {same}")
    print(json.dumps({"single_rps_1": rps1, "single_p95_ms_1": pct(one, .95) * 1e3, "single_rps_n": rpsn,
                      "single_p95_ms_n": pct(many, .95) * 1e3, "clients": args.clients, "errors": err1 + errn,
                      "upload_rows": args.file_rows, "upload_s": min(t_up), "predict_file_s": min(t_local),
                      "upload_equal": same}))


if __name__ == "__main__":
    main()
