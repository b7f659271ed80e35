"""IJB-B/C: TAR@FAR against an independent exact-k computation, pooling by hand, meta parsing, the CLI end to end."""

import json
import shutil

import numpy as np
import pytest
from helpers import TINY_SPEC, compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageFilter

from facetrain.data.images.image_io import read_aligned
from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.data.synth.ijbc_tree import _loose_crop
from facetrain.errors import FacetrainError
from facetrain.eval.metrics.templates import PooledTemplates
from facetrain.eval.protocols.ijb import (
    IjbFaces,
    IjbPoints,
    evaluate_ijb,
    ijb_identification,
    ijb_templates,
    ijb_verification,
    read_face_tid_mid,
    read_five_points,
    read_pair_labels,
    read_template_subjects,
)

SPEC = SynthSpec(**(TINY_SPEC.__dict__ | dict(ijbc_subjects=6, ijbc_templates=2, ijbc_impostor_ratio=3)))
FIVE = " ".join(["10", "10", "30", "10", "20", "20", "12", "30", "28", "30"])  # 5 distinct (x, y) points


def _protocol(**changes):
    base = dict(name="ijbc", fars=[1e-4, 1e-3, 0.01, 0.05], far_readoff="exact_k", pooling="media",
                normalize_images=False, detector_score=True, ranks=[1, 2], fpirs=[0.25])
    return OmegaConf.create(base | changes)


def _reference_tar(genuine, impostor, far):
    """Exact-k, written independently: k = FAR * N_imp rounded half up; threshold = the k-th highest impostor.

    k = 0: the midpoint between the top impostor and the lowest genuine score above it (accept iff score >= it).
    """
    ranked = sorted(impostor, reverse=True)
    k = int(far * len(ranked) + 0.5)
    above = [g for g in genuine if g > ranked[0]]
    if k >= 1:
        threshold = ranked[k - 1]
    elif above:
        threshold = (ranked[0] + min(above)) / 2
    else:
        threshold = ranked[0] + float(np.finfo(np.float32).eps)
    return sum(g >= threshold for g in genuine) / len(genuine)


def test_tar_at_far_equals_an_exact_k_computation(tmp_path):
    rng = np.random.default_rng(1)
    subject = np.repeat(np.arange(20), 3)  # templates 100..159, three per subject
    feats = rng.normal(size=(20, 8))[subject] + 0.6 * rng.normal(size=(60, 8))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    lines, labels = [], []
    for a in range(60):
        for b in range(a + 1, 60):
            if subject[a] == subject[b] or rng.random() < 0.6:
                lines.append(f"{100 + a} {100 + b} {int(subject[a] == subject[b])}")
                labels.append(subject[a] == subject[b])
    path = tmp_path / "ijbc_template_pair_label.txt"
    path.write_text("\n".join(lines) + "\n")
    pairs = read_pair_labels(path)
    pooled = PooledTemplates(list(range(100, 160)), feats, np.ones(60))
    numbers, (got_labels, scores) = ijb_verification(pooled, pairs, set(range(100, 160)), _protocol())
    cos = [float(feats[int(a) - 100] @ feats[int(b) - 100]) for a, b, _ in (ln.split() for ln in lines)]
    genuine = [c for c, same in zip(cos, labels, strict=True) if same]
    impostor = [c for c, same in zip(cos, labels, strict=True) if not same]
    assert len(impostor) > 900 and len(genuine) == 60
    np.testing.assert_allclose(scores, cos, atol=1e-12)
    for far in (1e-4, 1e-3, 0.01, 0.05):  # k = 0 (midpoint rule), 1, ~10, ~50
        assert numbers[f"tar@far={far:g}"] == pytest.approx(_reference_tar(genuine, impostor, far))
    assert numbers["genuine"] == 60 and numbers["impostor"] == len(impostor) and numbers["pairs_dropped"] == 0


def test_aligning_a_synthetic_loose_crop_gives_back_the_rendered_face(tmp_path):
    face = Image.fromarray(np.random.default_rng(0).integers(0, 256, (112, 96, 3), dtype=np.uint8)).filter(
        ImageFilter.GaussianBlur(2))  # smooth, so the 0.5 px landmark jitter moves pixels little
    scene, points, _ = _loose_crop(face, np.random.default_rng(4))
    scene.save(tmp_path / "1.png")
    back = read_aligned(tmp_path / "1.png", points, (112, 96)).permute(1, 2, 0).numpy().astype(float)
    inner = (slice(8, -8), slice(8, -8))  # the border mixes in the loose crop's background
    assert scene.size != face.size and np.abs(back[inner] - np.asarray(face, float)[inner]).mean() < 2.5  # 1 px off: 3.1


def test_template_pooling_by_hand():
    faces = IjbFaces(None, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], np.array([1, 1, 1, 2]), np.array([10, 10, 11, 12]),
                     np.arange(1, 5))
    points = IjbPoints(None, {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2, "d.jpg": 3}, np.zeros((4, 5, 2)),
                       np.array([0.5, 1.0, 1 / 3, 0.9]), np.arange(1, 5))
    feats = {"a.jpg": np.array([2.0, 0.0]), "b.jpg": np.array([0.0, 2.0]), "c.jpg": np.array([3.0, 3.0]),
             "d.jpg": np.array([0.0, -4.0])}
    pooled, dropped = ijb_templates(faces, feats, points, _protocol())
    # weighted: media 10 = mean([1, 0], [0, 2]) = [.5, 1]; media 11 = [1, 1]; template 1 = [.75, 1] -> [.6, .8]
    assert pooled.ids == [1, 2] and dropped == 0
    np.testing.assert_allclose(pooled.features, [[0.6, 0.8], [0.0, -1.0]])
    assert pooled.norms[0] == pytest.approx(1.25)
    plain, _ = ijb_templates(faces, feats, points, _protocol(detector_score=False))
    # unweighted: media 10 = [1, 1], media 11 = [3, 3], template 1 = [2, 2]; the row mean would be [5/3, 5/3]
    assert plain.norms[0] == pytest.approx(8**0.5)
    rows, _ = ijb_templates(faces, feats, points, _protocol(detector_score=False, pooling="mean"))
    assert rows.norms[0] == pytest.approx((5 / 3) * 2**0.5)
    without_d, dropped = ijb_templates(faces, {k: v for k, v in feats.items() if k != "d.jpg"}, points, _protocol())
    assert without_d.ids == [1] and dropped == 1  # a template whose faces all lack features is dropped, counted


def test_identification_by_hand():
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    pooled = PooledTemplates([1, 2, 3, 4, 5], feats, np.ones(5))
    galleries = {"g1": {1: 7}, "g2": {2: 8}}
    probes = {3: 7, 4: 8, 5: 8}  # template 3 is mated in g1, templates 4, 5 in g2
    m = ijb_identification(pooled, galleries, probes, _protocol(ranks=[1], fpirs=[0.5]))
    assert m["g1/rank1"] == 1.0 and m["g2/rank1"] == 1.0 and m["rank1"] == 1.0  # one gallery entry each
    assert m["g1/mated_probes"] == 1 and m["g1/nonmated_probes"] == 2 and m["g2/mated_probes"] == 2
    # g2: non-mated max scores {0.6 (probe 3)}: k = round(0.5) = 1, threshold 0.6; mates 0.8 and 0.0 -> 1/2
    assert m["g2/tpir@fpir=0.5"] == 0.5 and m["tpir@fpir=0.5"] == pytest.approx((m["g1/tpir@fpir=0.5"] + 0.5) / 2)


@pytest.mark.parametrize(("name", "body", "message"), [
    ("ijbc_face_tid_mid.txt", "1.jpg 1 1\n2.jpg 1\n", r"ijbc_face_tid_mid.txt:2: expected `image_name template_id "
                                                       r"media_id` \(3 fields\), got 2"),
    ("ijbc_face_tid_mid.txt", "1.jpg 1 1\n\n3.jpg x 1\n", r"ijbc_face_tid_mid.txt:3: template_id 'x' is not an"),
    ("ijbc_template_pair_label.txt", "1 2 1\n1 3 2\n", r"pair_label.txt:2: label '2' must be 1 \(same subject\)"),
    ("ijbc_template_pair_label.txt", "1 2\n", r"pair_label.txt:1: expected `template_id1 template_id2 label`"),
    ("ijbc_name_5pts_score.txt", f"1.jpg {FIVE}\n", r"5pts_score.txt:1: expected `image_name x1 y1 \.\.\. x5 y5 "
                                                   r"detector_score` \(12 fields\), got 11"),
    ("ijbc_name_5pts_score.txt", f"1.jpg {FIVE} 0.9\n2.jpg {FIVE} nan\n", r"5pts_score.txt:2: detector_score 'nan'"),
    ("ijbc_name_5pts_score.txt", f"1.jpg {FIVE} 0.9\n1.jpg {FIVE} 0.8\n", r"5pts_score.txt:2: 1.jpg is listed again "
                                                                        r"\(first on line 1\)"),
    ("ijbc_name_5pts_score.txt", "1.jpg " + " ".join(["5"] * 10) + " 0.9\n", r"5pts_score.txt:1: the 5 landmarks"),
    ("g.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,5,a.jpg\n1,6,b.jpg\n", r"g.csv:3: template 1 has subject 6 here"),
    ("g.csv", "TEMPLATE,SUBJECT\n1,5\n", r"g.csv:1: the header lacks TEMPLATE_ID or SUBJECT_ID"),
])
def test_malformed_meta_line_names_file_and_line(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_text(body)
    reader = {"tid_mid": read_face_tid_mid, "pair": read_pair_labels, "5pts": read_five_points}
    read = next((f for key, f in reader.items() if key in name), read_template_subjects)
    with pytest.raises(FacetrainError, match=message) as err:
        read(path)
    assert "\n" not in str(err.value)


def test_meta_files_read_like_insightface_writes_them(tmp_path):
    (tmp_path / "f.txt").write_text("1.jpg 1 69544\n2.jpg 1 69544\n3.jpg 2 3\n")
    faces = read_face_tid_mid(tmp_path / "f.txt")
    assert faces.names == ["1.jpg", "2.jpg", "3.jpg"] and faces.template.tolist() == [1, 1, 2]
    assert faces.media.tolist() == [69544, 69544, 3]
    (tmp_path / "p.txt").write_text(f"1.jpg {FIVE} 0.99961\n")
    points = read_five_points(tmp_path / "p.txt")
    assert points.points[0].tolist()[1] == [30.0, 10.0] and points.score[0] == pytest.approx(0.99961)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_data):
    """A tiny IJB-C-shaped synthetic tree, and a model trained for a few iterations on the session's tiny casia."""
    from facetrain.train import train

    root = tmp_path_factory.mktemp("ijbcdata")
    train(compose_config("train", tiny_train_overrides(tiny_data, root / "run")))
    write_synthetic_data(root / "synth", SPEC, workers=1)
    return root, root / "run"


def test_synthetic_tree_scores_through_the_cli(env, tmp_path, capsys):
    root, run = env
    out = tmp_path / "eval"
    proc = run_cli("eval", "ijbc", f"paths.data={root}", f"model={run}", "device=cpu", "num_workers=0",
                   "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    m = json.loads((out / "metrics.json").read_text())
    for far in ("1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1"):
        assert 0 <= m[f"ijbc/tar@far={far}"] <= 1
    assert m["ijbc/genuine"] == 12 and m["ijbc/impostor"] == 36 and m["ijbc/templates"] == 18
    assert 0 < m["ijbc/rank10"] <= 1 and m["ijbc/g1/mated_probes"] == 6 and "ijbc/tpir@fpir=0.01" in m
    assert "IJB-C 1:1 verification" in proc.stdout and "TPIR@FPIR=0.1" in proc.stdout
    assert (out / "roc_ijbc.png").stat().st_size > 1000

    meta = tmp_path / "meta"  # the same scores from the features file; 1:N skipped without its probe CSV
    shutil.copytree(root / "synth" / "ijbc" / "meta", meta)
    (meta / "ijbc_1N_probe_mixed.csv").unlink()
    cfg = compose_config("eval", ["protocol=ijbc", f"paths.data={root}", f"run_dir={tmp_path / 'again'}",
                                  f"features={out / 'features_ijbc.npz'}", f"protocol.meta={meta}", "plots=false"])
    again = instantiate(cfg.protocol.evaluate)(cfg)
    assert again["ijbc/tar@far=0.01"] == pytest.approx(m["ijbc/tar@far=0.01"]) and "ijbc/rank1" not in again
    assert "IJB-C 1:N identification skipped: " in capsys.readouterr().out

    ijbb = tmp_path / "IJBB" / "meta"  # IJB-B: the same code path under IJB-B's file names (galleries S1, S2)
    ijbb.mkdir(parents=True)
    for f in (root / "synth" / "ijbc" / "meta").iterdir():
        (ijbb / f.name.replace("ijbc", "ijbb").replace("_G", "_S")).write_bytes(f.read_bytes())
    cfg_b = compose_config("eval", ["protocol=ijbb", f"data.root={ijbb.parent}", f"run_dir={tmp_path / 'b'}",
                                    f"features={out / 'features_ijbc.npz'}", "plots=false"])
    b = instantiate(cfg_b.protocol.evaluate)(cfg_b)
    assert b["ijbb/tar@far=0.1"] == pytest.approx(m["ijbc/tar@far=0.1"]) and b["ijbb/s2/rank1"] == m["ijbc/g2/rank1"]
    with pytest.raises(FacetrainError, match=r"set data.root=\.\.\. to your IJB-B folder"):
        evaluate_ijb(compose_config("eval", ["protocol=ijbb"]))

    five = meta / "ijbc_name_5pts_score.txt"  # an image without landmarks: refused, naming the face_tid_mid line
    five.write_text("".join(ln for ln in five.read_text().splitlines(True) if not ln.startswith("2.jpg ")))
    with pytest.raises(FacetrainError, match=r"ijbc_face_tid_mid.txt:2: 1 image\(s\) have no landmarks in .*"
                                             r"\(first: 2.jpg\)"):
        instantiate(cfg.protocol.evaluate)(cfg)


def test_cli_refuses_a_malformed_meta_line_in_one_line(env, tmp_path):
    root, _ = env
    tree = tmp_path / "ijbc"
    shutil.copytree(root / "synth" / "ijbc" / "meta", tree / "meta")
    with (tree / "meta" / "ijbc_face_tid_mid.txt").open("a") as fh:
        fh.write("999.jpg 7\n")
    proc = run_cli("eval", "ijbc", f"data.root={tree}", "model=nowhere", cwd=tmp_path, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "ijbc_face_tid_mid.txt:" in lines[0] and "(3 fields), got 2" in lines[0]
