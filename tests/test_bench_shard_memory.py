"""scripts/bench_shard_memory.py: 2 gloo ranks, a tiny classifier; one JSON line per rank and phase."""

from __future__ import annotations

import json
import runpy

from helpers import REPO


def test_bench_prints_each_rank_and_phase_peak_and_shard_bytes(capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_shard_memory.py"))
    bench["main"](["--classes", "101", "--dim", "8"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(line["phase"], line["rank"]) for line in lines] == [
        (phase, r) for phase in ("init", "step", "save", "resume") for r in (0, 1)]
    for line in lines:
        rows = 51 if line["rank"] == 0 else 50  # 101 classes: 51 + 50
        assert line["shard_bytes"] == rows * 8 * 4 * 2  # ArcFace's fp32 weights + momentum
        assert line["full_bytes"] == 101 * 8 * 4 * 2
        assert line["peak_rss"] >= line["start_rss"] > 0 and line["baseline_rss"] > 0
        assert line["peak_above_baseline"] == line["peak_rss"] - line["baseline_rss"]
        expected = 1.5 * line["shard_bytes"] + (line["full_bytes"] if (line["phase"], line["rank"]) == ("save", 0) else 0)
        assert line["limit_bytes"] == int(expected)
        assert line["within"] == (line["peak_above_baseline"] <= line["limit_bytes"])
