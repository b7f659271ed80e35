"""`facetrain verify` and the export's model card: photos -> crops -> cosine -> a decision at a calibrated FAR."""

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config, run_cli, tiny_train_overrides
from PIL import Image

import facetrain.export as export_module
import facetrain.verify.command as verify_command
from facetrain.data.images.alignment import similarity_transform, template_for, warp_affine
from facetrain.data.images.image_io import read_image
from facetrain.errors import FacetrainError
from facetrain.export import export_from_config
from facetrain.models.model_card import card_path
from facetrain.models.trained_run import load_embedder
from facetrain.train import train
from facetrain.verify import photo_crops, top_identities

needs_onnx = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
                                reason="onnx/onnxscript/onnxruntime not installed (pip install 'facetrain[export]')")


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory) -> Path:
    """2 iterations, validated at the end: checkpoints/last.pt and the calibration.json of its weights."""
    run_dir = tmp_path_factory.mktemp("verify_run")
    train(compose_config("train", [*tiny_train_overrides(tiny_data, run_dir), "iterations=2", "val.every=2"]))
    return run_dir


@pytest.fixture(scope="module")
def faces(tiny_data) -> list[Path]:
    """Aligned synthetic crops: two of one identity, one of another."""
    lfw = tiny_data / "synth" / "lfw"
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)
    a = sorted(people[0].glob("*.jpg"))
    return [a[0], a[1], sorted(people[1].glob("*.jpg"))[0]]


def _verify(tmp_path, *args, check=True):
    return run_cli("verify", *args, "device=cpu", f"hydra.run.dir={tmp_path / 'hydra'}", cwd=tmp_path, check=check)


def _by_hand(checkpoint: Path, a: Path, b: Path) -> float:
    """Mirror-sum embeddings of the two crops at the model's input, their cosine."""
    trained = load_embedder(checkpoint)
    x = torch.stack([read_image(p, trained.preprocessing.input_size, trained.preprocessing.fit) for p in (a, b)])
    with torch.no_grad():
        f = (trained.embedder(x) + trained.embedder(x.flip(-1))).double()
    f = f / f.norm(dim=1, keepdim=True)
    return float(f[0] @ f[1])


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_aligned_photos_get_the_score_and_the_calibrated_decision(run, faces, tmp_path):
    record = json.loads((run / "calibration.json").read_text())["sets"]["lfw"]  # written by validation
    assert record["protocol"] == "validation" and record["checkpoint"] == {
        "path": str(run / "checkpoints" / "last.pt"), "iteration": 2}
    assert [t["resolved"] for t in record["thresholds"]] == [True] + [False] * 5  # 20 impostor pairs
    threshold = record["thresholds"][0]["threshold"]  # FAR 0.1: the tiny set's 20 impostor pairs resolve only that
    proc = _verify(tmp_path, str(faces[0]), str(faces[1]), f"model={run}", "aligned=true", "far=0.1",
                   f"out={tmp_path / 'one.csv'}")
    score = _by_hand(run / "checkpoints" / "last.pt", faces[0], faces[1])
    (row,) = _rows(tmp_path / "one.csv")
    assert float(row["cosine"]) == pytest.approx(score, abs=1e-5)
    assert row["decision"] == ("same" if score > threshold else "different")
    assert f"cosine {score:.4f}" in proc.stdout and f"threshold {threshold:.4f} at FAR 0.1" in proc.stdout
    assert f"from {run / 'calibration.json'}" in proc.stdout and "iteration 2" in proc.stdout


@pytest.mark.slow
def test_folders_and_a_csv_of_pairs_give_a_csv_of_scores(run, faces, tmp_path):
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir()
    right.mkdir()
    shutil.copy(faces[0], left / "a.jpg")
    for i, f in enumerate(faces[1:]):
        shutil.copy(f, right / f"b{i}.jpg")
    _verify(tmp_path, str(left), str(right), f"model={run}", "aligned=true", "far=0.1", f"out={tmp_path / 'f.csv'}")
    rows = _rows(tmp_path / "f.csv")
    assert [(Path(r["photo_a"]).name, Path(r["photo_b"]).name) for r in rows] == [("a.jpg", "b0.jpg"), ("a.jpg", "b1.jpg")]
    (tmp_path / "pairs.csv").write_text("photo_a,photo_b\nleft/a.jpg,right/b0.jpg\nright/b1.jpg,left/a.jpg\n")
    proc = _verify(tmp_path, str(tmp_path / "pairs.csv"), f"model={run}", "aligned=true", "far=0.1")
    from_csv = _rows(Path(proc.stdout.split("scores: ")[1].strip()))
    assert [float(r["cosine"]) for r in from_csv] == [float(r["cosine"]) for r in rows]
    assert all(r["decision"] in ("same", "different") for r in from_csv)


def test_a_detected_photo_is_aligned_onto_the_template(run, faces, tmp_path, monkeypatch):
    """A crop pasted rotated, scaled and shifted into a larger photo, its landmarks given by a fake detector, comes
    back as the crop (pixels and embedding); a photo where the detector finds nothing is one line naming it."""
    crop = Image.open(faces[0]).convert("RGB")
    size = (crop.height, crop.width)
    angle, scale, shift = np.deg2rad(12), 1.6, np.array([70.0, 45.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([rot, shift[:, None]])  # crop -> photo
    photo = warp_affine(crop, matrix, (330, 300), fill=(90, 90, 90))
    photo.save(tmp_path / "photo.png")
    points = template_for(size) @ rot.T + shift

    class Found:
        def __init__(self, landmarks):
            self.landmarks = landmarks

    def detector(images):  # the photo's face where it was put; an aligned crop's on the template; else none
        known = {(300, 330): points, (crop.width, crop.height): template_for(size)}
        return [Found(known[im.size]) if im.size in known else None for im in images]

    (back,) = photo_crops([tmp_path / "photo.png"], size, aligned=False, detector=detector)
    original = read_image(faces[0], size)
    inner = (slice(None), slice(8, -8), slice(8, -8))  # the border resamples the grey fill
    assert (back[inner].float() - original[inner].float()).abs().mean() < 6
    assert np.allclose(similarity_transform(points, template_for(size)) @ np.r_[points[0], 1], template_for(size)[0])

    monkeypatch.setattr(verify_command, "default_detector", lambda pick, device: detector)
    proc = _verify(tmp_path, str(tmp_path / "photo.png"), str(faces[0]), f"model={run}", "far=0.1",
                   f"out={tmp_path / 'd.csv'}")
    assert float(_rows(tmp_path / "d.csv")[0]["cosine"]) > 0.99, proc.stdout
    Image.new("RGB", (200, 200), (0, 0, 0)).save(tmp_path / "wall.png")
    bad = _verify(tmp_path, str(tmp_path / "wall.png"), str(faces[0]), f"model={run}", "far=0.1", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert f"no face found in {tmp_path / 'wall.png'}" in bad.stderr


def test_top_identities_ranks_by_each_identitys_best_photo():
    gallery = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 0, 1.0]])
    names = ["ann", "ann", "bob", "cy"]
    probes = np.array([[0, 0.6, 0.8], [1.0, 0, 0]])
    best, scores = top_identities(probes, gallery, names, k=2)
    assert best == [["cy", "bob"], ["ann", "bob"]]
    np.testing.assert_allclose(scores, [[0.8, 0.6], [1.0, 0.0]])


@pytest.mark.slow
def test_gallery_lists_the_top_identities_of_each_probe(run, faces, tmp_path):
    gallery = tmp_path / "gallery"
    for i, f in enumerate(faces[1:]):
        (gallery / f"id{i}").mkdir(parents=True)
        shutil.copy(f, gallery / f"id{i}" / "x.jpg")
    _verify(tmp_path, str(faces[0]), f"gallery={gallery}", f"model={run}", "aligned=true", "far=0.1", "top_k=5",
            f"out={tmp_path / 'g.csv'}")
    rows = _rows(tmp_path / "g.csv")
    assert [r["rank"] for r in rows] == ["1", "2"] and {r["identity"] for r in rows} == {"id0", "id1"}
    expected = {f"id{i}": _by_hand(run / "checkpoints" / "last.pt", faces[0], f) for i, f in enumerate(faces[1:])}
    assert [float(r["cosine"]) for r in rows] == pytest.approx(sorted(expected.values(), reverse=True), abs=1e-5)
    assert rows[0]["identity"] == max(expected, key=expected.get)


def _one_line_error(proc, *fragments):
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not proc.stdout, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_bad_inputs_are_one_line_each(run, faces, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "empty").mkdir()
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "last.pt", bare / "checkpoints" / "last.pt")
    face = str(faces[0])
    _one_line_error(_verify(tmp_path, face, str(tmp_path / "notes.jpg"), f"model={run}", "aligned=true", "far=0.1",
                            check=False), f"cannot read image {tmp_path / 'notes.jpg'}")
    with pytest.raises(FacetrainError, match=f"cannot read image {tmp_path / 'notes.jpg'}"):  # the detection path
        photo_crops([tmp_path / "notes.jpg"], (112, 96), aligned=False, detector=lambda images: [None])
    _one_line_error(_verify(tmp_path, str(tmp_path / "empty"), str(tmp_path / "empty"), f"model={run}", "far=0.1",
                            "aligned=true", check=False), f"folder {tmp_path / 'empty'} holds no images")
    _one_line_error(_verify(tmp_path, face, face, f"model={tmp_path / 'nope'}", check=False),
                    f"model {tmp_path / 'nope'} does not exist")
    _one_line_error(_verify(tmp_path, face, face, f"model={bare}", "aligned=true", check=False),
                    f"{bare / 'calibration.json'} does not exist", f"facetrain eval lfw model={bare}")
    for setting, message in (("far=abc", "far='abc' must be a false accept rate between 0 and 1"),  # tracebacks
                             ("batch_size=abc", "batch_size='abc' must be an integer >= 1"),
                             (f"out={tmp_path}", f"out={tmp_path} is a folder; give the CSV file"),
                             ("top_k=0", "top_k=0 must be an integer >= 1")):  # listed no identity
        _one_line_error(_verify(tmp_path, face, face, f"model={run}", setting, check=False), message)


@pytest.mark.slow
def test_more_bad_calibration_settings_are_one_line_each(run, faces, tmp_path):
    bare = tmp_path / "bare"
    (bare / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "last.pt", bare / "checkpoints" / "last.pt")
    face = str(faces[0])
    _one_line_error(_verify(tmp_path, face, face, f"model={run}", f"calibration={tmp_path / 'c.json'}", check=False),
                    f"calibration file {tmp_path / 'c.json'} does not exist")
    _one_line_error(_verify(tmp_path, face, face, f"model={run}", "far=1e-3", "aligned=true", check=False),
                    "far=0.001 is not resolved", "needs >= 1000 impostor pairs")
    no_decision = _verify(tmp_path, face, face, f"model={bare}", "aligned=true", "calibration=none")
    assert "no decision" in no_decision.stdout
    exported = tmp_path / "bare.pt"  # exported from a run without calibration.json: eval the run, export again
    run_cli("export", f"model={bare}", "format=torchscript", f"out={exported}", f"hydra.run.dir={tmp_path / 'h'}",
            cwd=tmp_path)
    _one_line_error(_verify(tmp_path, face, face, f"model={exported}", "aligned=true", check=False),
                    f"{exported} was exported from a run without calibration.json",
                    f"run `facetrain eval lfw model={bare}` and export again")


def test_export_writes_a_card_and_verify_reads_it(run, faces, tmp_path):
    out = tmp_path / "face.pt"
    proc = run_cli("export", f"model={run}", "format=torchscript", f"out={out}", f"hydra.run.dir={tmp_path / 'h'}",
                   cwd=tmp_path)
    card = json.loads(card_path(out).read_text())
    trained = load_embedder(run / "checkpoints" / "last.pt")
    h, w = trained.preprocessing.input_size
    assert card["input"]["size"] == [h, w] and card["input"]["channel_order"] == "RGB"
    assert card["input"]["normalization"] == {"inside_model": True, "formula": "(x - 127.5) / 128", "mean": 127.5,
                                              "std": 128.0}
    assert card["alignment"]["crop_size"] == [h, w]
    np.testing.assert_allclose(card["alignment"]["template_points"], template_for((h, w)), atol=1e-4)
    assert card["embedding"] == {"size": 16, "score": "cosine"}
    assert card["calibration"] == json.loads((run / "calibration.json").read_text())
    assert card["training_run"]["iteration"] == 2 and card["training_run"]["run_dir"] == str(run)
    assert card["parity"]["min_cosine"] >= 0.9999 and "crops of" in card["parity"]["source"]
    assert "lowest cosine" in proc.stdout and "largest |difference|" in proc.stdout

    _verify(tmp_path, str(faces[0]), str(faces[2]), f"model={out}", "aligned=true", "far=0.1", f"out={tmp_path / 'e.csv'}")
    _verify(tmp_path, str(faces[0]), str(faces[2]), f"model={run}", "aligned=true", "far=0.1", f"out={tmp_path / 'r.csv'}")
    exported, original = _rows(tmp_path / "e.csv")[0], _rows(tmp_path / "r.csv")[0]
    assert float(exported["cosine"]) == pytest.approx(float(original["cosine"]), abs=1e-5)
    assert exported["decision"] == original["decision"]

    with open(out, "ab") as f:  # the file changes after the card was written
        f.write(b"\0")
    _one_line_error(_verify(tmp_path, str(faces[0]), str(faces[1]), f"model={out}", "aligned=true", check=False),
                    f"model card {card_path(out)} does not match {out}")


def test_export_refuses_a_file_off_parity_and_leaves_nothing(run, tmp_path, monkeypatch):
    real = export_module.load_exported

    def drifted(path, fmt):
        model = real(path, fmt)
        return lambda x: model(x) + 0.05 * torch.randn(model(x).shape, generator=torch.Generator().manual_seed(0))

    monkeypatch.setattr(export_module, "load_exported", drifted)
    cfg = compose_config("export", [f"model={run}", "format=torchscript", f"out={tmp_path / 'x' / 'face.pt'}",
                                    "tolerance=1"])
    with pytest.raises(FacetrainError, match=r"lowest cosine 0\.\d+ < parity_cosine=0\.9999 .*nothing was written"):
        export_from_config(cfg)
    assert list((tmp_path / "x").iterdir()) == []


@needs_onnx
@pytest.mark.slow
def test_verify_reads_an_onnx_exports_card(run, faces, tmp_path):
    out = tmp_path / "face.onnx"
    export_from_config(compose_config("export", [f"model={run}", "format=onnx", f"out={out}"]))
    assert json.loads(card_path(out).read_text())["model_format"] == "onnx"
    _verify(tmp_path, str(faces[0]), str(faces[2]), f"model={out}", "aligned=true", "far=0.1", f"out={tmp_path / 'o.csv'}")
    score = _by_hand(run / "checkpoints" / "last.pt", faces[0], faces[2])
    assert float(_rows(tmp_path / "o.csv")[0]["cosine"]) == pytest.approx(score, abs=1e-5)


def test_the_bundled_detector_verifies_real_photos(run, tmp_path):
    """facetrain's own detector in the loop: a real photo against an LFW-like cut of it (rescaled, shifted) scores
    as the same face, above the same photo against another person; a photo without a face is one line."""
    from photo_helpers import PHOTOS, lfw_like

    cut, _ = lfw_like("astronaut.jpg")
    cut.save(tmp_path / "astronaut_cut.jpg", quality=95)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"photo_a,photo_b\n{PHOTOS / 'astronaut.jpg'},{tmp_path / 'astronaut_cut.jpg'}\n"
                     f"{PHOTOS / 'astronaut.jpg'},{PHOTOS / 'grace_hopper.jpg'}\n")
    _verify(tmp_path, str(pairs), f"model={run}", "far=0.1", f"out={tmp_path / 's.csv'}")
    same, other = (float(r["cosine"]) for r in _rows(tmp_path / "s.csv"))
    assert same > 0.95 and same > other, (same, other)
    bad = _verify(tmp_path, str(PHOTOS / "coffee.jpg"), str(PHOTOS / "astronaut.jpg"), f"model={run}", "far=0.1",
                  check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert f"no face found in {PHOTOS / 'coffee.jpg'}" in bad.stderr


def test_an_arcface_pth_decides_with_a_calibration_file(faces, tmp_path):
    """model= an arcface_torch backbone.pth (no run, so no calibration of its own) with calibration=FILE: the score is
    the source module's mirror-sum cosine at its 16x16 input; the decision uses the file's threshold for `far`."""
    from arcface_helpers import ArcIResNet

    from facetrain.eval.calibrate import calibration_record
    from facetrain.run.calibration_file import update_calibration

    torch.manual_seed(2)
    small = ArcIResNet((1, 1, 1, 1), 8, side=1).eval()  # 1x1 last map: a 16x16 input
    model = tmp_path / "arc" / "backbone.pth"
    model.parent.mkdir()
    torch.save(small.state_dict(), model)
    x = torch.stack([read_image(p, (16, 16), "resize") for p in (faces[0], faces[2])])
    with torch.no_grad():
        f = (small(x) + small(x.flip(-1))).double()
    score = float(torch.nn.functional.cosine_similarity(f[0], f[1], dim=0))

    rng = np.random.default_rng(0)  # a set whose FAR 0.01 threshold sits just above / below this score
    same = np.r_[np.ones(50, bool), np.zeros(1000, bool)]
    for name, shift in (("above", 0.01), ("below", -0.01)):
        impostors = np.r_[rng.uniform(-1, score + shift - 0.02, 989), np.full(11, score + shift)]  # 11th largest
        record = calibration_record("lfw", name, same, np.r_[rng.uniform(0.5, 1, 50), impostors], pairs_of="image",
                                    checkpoint=model, iteration=0, mirror="sum")
        assert record["thresholds"][1]["threshold"] == pytest.approx(score + shift)
        update_calibration(tmp_path / name, {name: record})

    bare = _verify(tmp_path, str(faces[0]), str(faces[2]), f"model={model}", "aligned=true", check=False)
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1  # (stdout: the loader's line naming the format)
    assert f"{model} has no calibration ({model.parent / 'calibration.json'} does not exist)" in bare.stderr
    assert "pass calibration=FILE" in bare.stderr
    for name, decision in (("above", "different"), ("below", "same")):
        calibration = tmp_path / name / "calibration.json"
        proc = _verify(tmp_path, str(faces[0]), str(faces[2]), f"model={model}", "aligned=true", "far=0.01",
                       f"calibration={calibration}", f"out={tmp_path / f'{name}.csv'}")
        (row,) = _rows(tmp_path / f"{name}.csv")
        assert float(row["cosine"]) == pytest.approx(score, abs=1e-5) and row["decision"] == decision
        assert "at FAR 0.01" in proc.stdout and f"on set {name}" in proc.stdout and f"from {calibration}" in proc.stdout
