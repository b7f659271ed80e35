"""scripts/bench_loader.py's one-core table: the bare libjpeg-turbo rate and each loader's item rate against it."""

import runpy

from helpers import REPO


def test_bench_loader_one_core_reports_rates_and_ratios(tmp_path, capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_loader.py"))
    rows = bench["main"](["--images", "24", "--identities", "3", "--rounds", "1", "--sizes", "48x40", "--batch", "8",
                          "--out", str(tmp_path)])
    assert [r["item"] for r in rows] == ["bare", "rec", "pack_jpeg", "folder", "rec+batch", "rec+batch_cl"]
    assert all(r["images_per_s"] > 0 for r in rows) and rows[0]["x_bare"] == 1.0
    out = capsys.readouterr().out
    assert "24 JPEGs at 48x40" in out and "load average" in out
    for r in rows:
        assert f"{r['item']:<12} {r['images_per_s']:8.0f} {r['x_bare']:7.2f}" in out
