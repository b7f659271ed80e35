"""The report's checkpoint analyses (docs/analyses.md): quality.tsv of the synthetic trees, and the plots of
feature norm vs quality, class-weight norm vs class size, classifier bias and 2-D features — each checked through
the data it drew against an independent recomputation from the checkpoint and the tree."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config, tiny_train_overrides
from omegaconf import OmegaConf

from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.data.synth import trees as synth_trees
from facetrain.data.synth.nuisance import sample_nuisance
from facetrain.data.synth.quality import quality_path, read_quality
from facetrain.errors import FacetrainError
from facetrain.report import build_report
from facetrain.report.analyses.analysed_run import AnalysedRun
from facetrain.report.compose import compose_primary
from facetrain.report.runs import RunRecord
from facetrain.train import train

MINI = SynthSpec(seed=5, train_identities=3, train_min_images=2, train_max_images=3, lfw_folds=2,
                 lfw_pairs_per_fold=1, lfw_identities_per_fold=2, lfw_max_images=3)


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parent.name != "quality" and p.name != "synth.json"}


def test_quality_file_lists_every_image_with_factors_in_range(tiny_data):
    for tree in ("casia", "lfw"):
        root = tiny_data / "synth" / tree
        quality = read_quality(root)
        assert set(quality) == {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}
        for f in quality.values():
            assert 0 <= f["quality"] <= 1 and 0 <= f["blur"] <= 2 and 1 <= f["downsample"] <= 5
            assert 2 <= f["noise"] <= 14 and f["occlusion"] in (0, 1, 2, 3) and abs(f["roll"]) <= 20
            assert abs(f["yaw"]) <= 0.8 and abs(f["pitch"]) <= 0.4
            assert f["pose"] == pytest.approx(abs(f["yaw"]) + abs(f["pitch"]), abs=1e-5)
    # independently: casia person 2 (folder 0000002), image 3 is drawn from generator [seed, 1, 1, 3]
    nz = sample_nuisance(np.random.default_rng([3, 1, 1, 3]))
    row = read_quality(tiny_data / "synth" / "casia")["0000002/003.jpg"]
    assert row["quality"] == pytest.approx(nz.quality, rel=1e-5) and row["occlusion"] == nz.occlusion
    assert row["noise"] == pytest.approx(2 + 12 * nz.quality, rel=1e-5)


def test_recording_quality_leaves_images_byte_identical(tmp_path, monkeypatch):
    write_synthetic_data(tmp_path / "with", MINI, workers=1)
    with monkeypatch.context() as m:
        m.setattr(synth_trees, "write_quality", lambda *a: None)
        write_synthetic_data(tmp_path / "without", MINI, workers=1)
    assert not (tmp_path / "without" / "quality").exists()
    assert _hashes(tmp_path / "with") == _hashes(tmp_path / "without") and len(_hashes(tmp_path / "with")) > 10
    # an existing tree without quality.tsv gets one on the next synth call, its images untouched
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "without").rglob("*.jpg")}
    summary = write_synthetic_data(tmp_path / "without", MINI, workers=1)
    assert summary["reused"] and before == {p: p.stat().st_mtime_ns for p in (tmp_path / "without").rglob("*.jpg")}
    for tree in ("casia", "lfw"):
        assert (quality_path(tmp_path / "without" / tree).read_text()
                == quality_path(tmp_path / "with" / tree).read_text())


def test_missing_or_malformed_quality_file_is_named(tmp_path):
    with pytest.raises(FacetrainError, match="casia.tsv does not exist.*facetrain data synth"):
        read_quality(tmp_path / "casia")
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "casia.tsv").write_text("path\tquality\n")
    with pytest.raises(FacetrainError, match="has header"):
        read_quality(tmp_path / "casia")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """Tiny softmax, NormFace, L2-softmax and 2-D LeNet++ (no bias) runs on the tiny synthetic tree."""
    base = tmp_path_factory.mktemp("analyses")
    runs = {"softmax": ["loss=softmax"], "normface": ["loss=normface"], "l2": ["loss=l2softmax", "alpha=8"],
            "magface": ["loss=magface"],
            "lenet": ["backbone=lenet_pp", "embedding_dim=2", "input_size=[28,28]", "backbone.in_channels=3",
                      "loss=softmax", "loss.bias=false", "data.hflip=false"]}
    for name, extra in runs.items():
        overrides = [o for o in tiny_train_overrides(tiny_data, base / name) if not (
            name == "lenet" and o.startswith("backbone.channels"))]
        train(compose_config("train", overrides + extra))
    return base


def _report(trained, *names, **plots):
    keep = {"metric_curve": "null", **plots}
    return build_report(compose_primary("report", [f"dirs=[{','.join(str(trained / n) for n in names)}]",
                                                   f"out={trained / 'report'}", "analysis_samples=20",
                                                   *(f"plots.{k}={v}" for k, v in keep.items())]))


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def test_weight_norm_plot_draws_each_class_against_its_image_count(trained, tiny_data):
    report = _report(trained, "softmax", "normface", "lenet", quality_norms="null", classifier_bias="null",
                     features2d="null")
    (plot,) = report.plots
    assert plot.path.is_file() and plot.path.name == "weight_norm_vs_class_size.png"
    assert len(plot.series) == 3
    counts = [len(list(d.glob("*.jpg"))) for d in sorted((tiny_data / "synth" / "casia").iterdir()) if d.is_dir()]
    softmax = next(v for k, v in plot.series.items() if k.startswith("SoftmaxLoss") and "(softmax)" in k)
    assert softmax[0] == [float(c) for c in counts]
    weight = _state(trained / "softmax")["model"]["loss"]["classifier.weight"]
    assert softmax[1] == pytest.approx(weight.norm(dim=1).tolist(), rel=1e-5)
    assert sum("Pearson r" in n for n in plot.notes) == 3
    normface = next(v for k, v in plot.series.items() if k.startswith("normface") or "(normface)" in k)
    assert set(normface[1]) == {1.0} and any("stored parameter" in n for n in plot.notes)


def test_a_loss_this_facetrain_cannot_import_is_said_in_one_line(trained, capsys):
    state = _state(trained / "normface")
    record = RunRecord("normface", trained / "normface", {}, {}, "completed", "", None)
    assert AnalysedRun(record.dir, state, record).normalizes_weights() and capsys.readouterr().out == ""
    cfg = OmegaConf.create(state["config"])
    cfg.loss._target_ = "facetrain.losses.RetiredLoss"
    run = AnalysedRun(record.dir, {**state, "config": OmegaConf.to_yaml(cfg)}, record)
    assert not run.normalizes_weights() and not run.normalizes_weights()
    (line,) = capsys.readouterr().out.splitlines()  # once per run, however often the plot asks
    assert "'facetrain.losses.RetiredLoss' cannot be imported" in line and "drawn as stored" in line


def test_bias_plot_sorts_the_classifier_bias_and_skips_runs_without_one(trained):
    report = _report(trained, "softmax", "normface", "lenet", quality_norms="null", weight_norms="null",
                     features2d="null")
    (plot,) = report.plots
    assert plot.path.is_file() and list(plot.series) == ["SoftmaxLoss, bias=true (softmax)"]
    xs, ys = plot.series["SoftmaxLoss, bias=true (softmax)"]
    bias = _state(trained / "softmax")["model"]["loss"]["classifier.bias"]
    assert xs == list(range(6)) and ys == pytest.approx(sorted(bias.tolist()), rel=1e-6)


def test_quality_plot_embeds_training_images_and_draws_norm_terciles(trained, tiny_data):
    for run in ("softmax", "l2"):  # as if scored with analysis.norm_sets=3
        metrics = json.loads((trained / run / "metrics.json").read_text())
        metrics |= {"lfw/norm_sets/1-1/acc": 0.5, "lfw/norm_sets/1-1/pairs": 4.0, "lfw/norm_sets/3-3/acc": 0.75,
                    "lfw/norm_sets/3-3/pairs": 8.0}
        (trained / run / "metrics.json").write_text(json.dumps(metrics))
    report = _report(trained, "softmax", "l2", weight_norms="null", classifier_bias="null", features2d="null")
    scatter, sets = report.plots
    assert scatter.path.is_file() and sets.path.is_file() and len(scatter.series) == 2
    quality = read_quality(tiny_data / "synth" / "casia")
    n = min(20, len(quality))
    for xs, ys in scatter.series.values():
        assert len(xs) == len(ys) == n and np.median(ys) == pytest.approx(1.0)
        assert set(xs) <= {q["quality"] for q in quality.values()}
    assert all(ys == [50.0, 75.0] for _, ys in sets.series.values()) and list(sets.vlines) == ["1-1", "3-3"]
    assert any("3-3 75.00% (8 pairs)" in note for note in sets.notes)


def test_features2d_plot_draws_every_sampled_feature_in_two_dimensions(trained):
    report = _report(trained, "softmax", "lenet", quality_norms="null", weight_norms="null", classifier_bias="null")
    (plot,) = report.plots  # the 16-D softmax run is not a 2-D run
    assert plot.path.is_file() and plot.path.name == "features2d_lenet.png"
    assert sum(len(xs) for xs, _ in plot.series.values()) == 20 and len(plot.series) <= 6
    assert "classifier accuracy" in plot.notes[0]


def _written_note(run: Path, out: Path, plot: str) -> str:
    """The report of `run` with only `plot` drawn; the plot's note as report.md lists it."""
    others = ("metric_curve", "quality_norms", "weight_norms", "classifier_bias", "features2d")
    report = build_report(compose_primary("report", [f"dirs=[{run}]", f"out={out}", "analysis_samples=1000",
                                                     *(f"plots.{k}=null" for k in others if k != plot)]))
    (note,) = [line for line in report.markdown.read_text().splitlines() if line.startswith("- ")]
    return note


def _check_weight_norm_note(run: Path, tiny_data: Path, out: Path) -> None:
    """r(images per class, ||W_j||) in report.md against scipy on the tree's folder sizes and the checkpoint."""
    from scipy.stats import pearsonr

    note = _written_note(run, out, "weight_norms")
    m = re.search(r"Pearson r\(images per class, \|\|W_j\|\|\) = (\S+) over (\d+) classes "
                  r"\(norms (\S+) \.\. (\S+)\)", note)
    counts = [len(list(d.glob("*.jpg"))) for d in sorted((tiny_data / "synth" / "casia").iterdir()) if d.is_dir()]
    norms = _state(run)["model"]["loss"]["classifier.weight"].norm(dim=1).numpy()
    assert m and int(m[2]) == len(counts) == len(norms) and len(set(counts)) > 1, note
    assert float(m[1]) == pytest.approx(pearsonr(counts, norms).statistic, abs=5.1e-4)
    assert (float(m[3]), float(m[4])) == pytest.approx((norms.min(), norms.max()), rel=5.1e-3)


def _check_quality_note(run: Path, tiny_data: Path, out: Path) -> None:
    """Spearman rho(factor, feature norm) in report.md against scipy on every training image, embedded here."""
    from scipy.stats import spearmanr

    from facetrain.data.images.image_io import read_image
    from facetrain.models.trained_run import load_embedder

    note = _written_note(run, out, "quality_norms")
    root = tiny_data / "synth" / "casia"
    files = sorted(root.rglob("*.jpg"))
    net = load_embedder(run / "checkpoints" / "last.pt").embedder.eval()
    with torch.no_grad():
        feats = net(torch.stack([read_image(f, (56, 48), "resize") for f in files]))
    norms = feats.norm(dim=1).numpy()
    quality = read_quality(root)
    rows = [quality[f.relative_to(root).as_posix()] for f in files]
    m = re.search(r"over (\d+) training images: quality (\S+), blur (\S+), pose (\S+), occlusion (\S+); "
                  r"median norm (\S+),", note)
    assert m and int(m[1]) == len(files), note
    for i, factor in enumerate(("quality", "blur", "pose", "occlusion"), 2):
        expected = spearmanr([r[factor] for r in rows], norms).statistic
        assert float(m[i].rstrip(",;")) == pytest.approx(expected, abs=5.1e-4), factor
    assert float(m[6]) == pytest.approx(np.median(norms), rel=5.1e-3)


@pytest.mark.parametrize("preset", ["review_classifier", "review_quality", "review_bias_2d"])
def test_review_presets_compose_and_their_synth_twins_train(preset, tiny_data, tmp_path):
    full = compose_config("train", [f"experiment={preset}"])
    assert full.iterations >= 900 and full.val.every == 0
    twin = compose_config("train", [f"experiment={preset}_synth"])
    assert twin.iterations <= 400 and twin.data.root.endswith("synth/casia")
    lenet = preset == "review_bias_2d"  # the face twins train small_cnn, shrunk as the `trained` fixture's
    keep = [o for o in tiny_train_overrides(tiny_data, tmp_path / "run")
            if not (lenet and o.startswith(("embedding_dim", "backbone.channels")))]
    train(compose_config("train", [f"experiment={preset}_synth", *keep, "iterations=2"]))
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    if preset == "review_classifier":
        _check_weight_norm_note(tmp_path / "run", tiny_data, tmp_path / "report")
    elif preset == "review_quality":
        assert twin.input_size == [56, 48]
        _check_quality_note(tmp_path / "run", tiny_data, tmp_path / "report")


def test_quality_plot_names_magface_norm_the_quality_score(trained):
    report = _report(trained, "magface", weight_norms="null", classifier_bias="null", features2d="null")
    (scatter,) = report.plots  # no norm sets in its metrics
    assert list(scatter.series) == ["MagFaceLoss (magface)"]
    (note,) = [n for n in scatter.notes if "quality score" in n]
    assert note.startswith("MagFaceLoss (magface)") and "Spearman rho(quality level, norm)" in note
