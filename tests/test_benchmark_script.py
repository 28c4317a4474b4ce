"""benchmarks/step_speed.py runs and writes what docs/performance.md quotes (a smoke run on
the small model; the speed itself is shown by running the script, never by a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optimlab.fused import engine

pytestmark = pytest.mark.skipif(not engine.available(), reason="no C compiler for the fused path")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_speed.py"


def test_step_speed_script_reports_every_column(tmp_path):
    out_json, out_md = tmp_path / "speed.json", tmp_path / "speed.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "c", "--algos", "sgd,nadam,clip+adamw", "--steps", "3",
         "--warmup", "1", "--triad-elements", "100000", "--json", str(out_json), "--markdown", str(out_md)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    results = json.loads(out_json.read_text())["results"]
    # bfloat16 rows for the algorithms torch has a fused kernel of
    assert [(r["algo"], r["dtype"]) for r in results] == [
        ("sgd", "float32"), ("nadam", "float32"), ("clip+adamw", "float32"), ("sgd", "bfloat16"),
        ("clip+adamw", "bfloat16")]
    for r in results:
        assert r["tensors"] == 2000 and r["elements"] == 1_000_000
        assert set(r["median_s"]) >= {"optimlab", "torch foreach"}
        assert all(t > 0 for t in r["median_s"].values())
        assert r["ratio"] > 0 and r["per_byte_vs_torch_fused_adam"] > 0 and 0 < r["bandwidth_fraction"]
    assert "torch fused" in results[0]["median_s"] and "torch fused" not in results[1]["median_s"]
    assert results[2]["bytes_moved"] == 1_000_000 * 4 * 8  # the global norm reads the gradients twice
    assert results[4]["bytes_moved"] == 1_000_000 * 2 * 8
    table = out_md.read_text().splitlines()
    assert len([line for line in table if line.startswith("| (c)")]) == 5


def test_matrix_speed_script_times_optimlab_beside_its_rivals(tmp_path):
    out_json, out_md = tmp_path / "matrix.json", tmp_path / "matrix.md"
    subprocess.run(
        [sys.executable, str(SCRIPT.with_name("matrix_speed.py")), "--models", "mlp", "--algos", "muon",
         "--steps", "2", "--warmup", "1", "--json", str(out_json), "--markdown", str(out_md)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    [row] = json.loads(out_json.read_text())["results"]
    assert row["model"] == "mlp" and row["matrices"] == 3 and row["elements"] == 128 * 40 + 128 * 128 + 10 * 128
    assert {"optimlab", "torch", "heavyball"} <= set(row["median_s"]) and set(row["ratio"]) == set(row["median_s"]) - {"optimlab"}
    assert all(t > 0 for t in row["median_s"].values()) and all(r > 0 for r in row["ratio"].values())
    assert any(line.startswith("| mlp (3 matrices) | muon |") for line in out_md.read_text().splitlines())
