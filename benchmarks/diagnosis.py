"""The bias / variance diagnosis calib prints, on the bundled batch and both real certificates.

Run from the repository root::

    .venv/bin/python benchmarks/diagnosis.py [--jobs 2] [--raw /work/shared/data/raw]

Per data set, :func:`calib.validate.cross_validate` (5 folds; GroupKFold by spot on the bundled
batch) and its :class:`calib.validate.Diagnosis`, as ``calib validate`` prints it:

* bundled batch (``data/readings.csv``, ``data/calib.toml``'s ``[model]``: the ``mlp`` default);
  beside it the simulator's known floors (:func:`calib.simulate.noise_floor_hPa`: input noise
  alone, and with the spot-to-spot deviations): calib's estimate must recover the input-noise
  floor within a factor 1.5;
* Aanderaa 4330 (63 points) and SBE63 (24 points) certificates with the ``physics`` family
  (what calib's main job keeps on both): the advice must speak of the classical form, not of a
  network.

Prints one block per data set and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CERTS = {
    "aanderaa_4330": ("aanderaa-optode-calcerts/aadi4330_1463_b1206E.csv",
                      'features = ["phase_deg", "temperature_degC"]\ntarget = "o2_umol_per_L"'),
    "sbe63": ("aanderaa-optode-calcerts/sbe63_0800_factory.csv",
              'features = ["phase_delay_us", "temperature_degC"]\ntarget = "o2_mL_per_L"'),
}


def _diagnose(ds, cfg, mc, jobs):
    from calib.validate import cross_validate

    t0 = time.perf_counter()
    cv = cross_validate(ds, np.arange(ds.n_rows), mc, folds=5, jobs=jobs, tolerance=1.0, scaling=cfg.split.scaling,
                        seed=0, physics=False)
    d = cv.diagnosis().to_dict()
    d["seconds"] = round(time.perf_counter() - t0, 1)
    d["unit"] = ds.target.unit
    return d


def _show(name, d, extra=""):
    u = d["unit"]
    f = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
    print(f"{name} ({d['family']}, {d['seconds']} s)")
    print(f"  noise floor (input noise, {d['noise_floor_source']}) {f(d['noise_floor'])} {u}"
          + ("" if d["spot_floor"] is None else f"; spot-to-spot {f(d['spot_floor'])} {u} -> unseen-spot floor "
             f"{f(d['floor'])} {u}") + extra)
    print(f"  train MAE {f(d['train_mae'])}, validation MAE {f(d['val_mae'])} {u}; avoidable bias "
          f"{f(d['avoidable_bias'])} (vs the {d['floor_name']}), variance gap {f(d['variance'])}")
    print(f"  verdict: {d['verdict']}")


def main() -> None:
    from calib.config import load_config
    from calib.ingest import load_dataset
    from calib.simulate import SimulationConfig, noise_floor_hPa

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--raw", default=str(ROOT.parent / "shared" / "data" / "raw"))
    args = ap.parse_args()
    out = {}
    cfg = load_config(ROOT / "data" / "calib.toml")
    ds = load_dataset(ROOT / "data" / "readings.csv", cfg.data)
    d = _diagnose(ds, cfg, cfg.model_config(), args.jobs)
    sim = SimulationConfig()
    true_noise = noise_floor_hPa(sim)
    d["simulator_input_noise_floor"] = true_noise
    d["simulator_unseen_spot_floor"] = noise_floor_hPa(sim, include_spot_variation=True)
    d["noise_floor_ratio"] = d["noise_floor"] / true_noise if d["noise_floor"] else None
    out["bundled"] = d
    _show("bundled batch", d, f" (simulator: input noise {true_noise:.4g}, with spot deviations "
                              f"{d['simulator_unseen_spot_floor']:.4g}; estimate / truth {d['noise_floor_ratio']:.2f})")
    for name, (rel, data) in CERTS.items():
        path = Path(args.raw) / rel
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "calib.toml"
            p.write_text(f"[data]\n{data}\n\n[model]\nfamily = \"physics\"\n")
            c = load_config(p)
        cds = load_dataset(path, c.data)
        out[name] = _diagnose(cds, c, c.model_config(), 1)
        _show(f"{name} certificate", out[name])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
