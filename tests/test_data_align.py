"""Alignment: Umeyama's similarity transform, warping known landmarks onto the template, the align tool."""

import json

import numpy as np
import pytest
from PIL import Image

from facetrain.data.images.align_tree import align_tree
from facetrain.data.images.alignment import TEMPLATE_112x96, similarity_transform, template_for, warp_face
from facetrain.data.images.landmarks import read_landmarks
from facetrain.errors import FacetrainError


def _similar(points, angle, scale, shift):
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ (scale * rot).T + shift


def _dots(points, shape=(400, 400), sigma=2.5):
    """A grey image with a Gaussian blob centred on each point (pixel centres at integers)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points)
    return Image.fromarray(np.clip(255 * img, 0, 255).astype(np.uint8))


def _centroids(image, points, radius=6):
    a = np.asarray(image)[..., 0].astype(float)
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    out = []
    for x, y in points:
        w = a * (((xx - x) ** 2 + (yy - y) ** 2) < radius**2)
        out.append(((w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()))
    return np.array(out)


def test_umeyama_recovers_a_similarity_and_fits_in_least_squares():
    src = np.random.default_rng(0).uniform(0, 200, (5, 2))
    dst = _similar(src, 0.4, 0.7, np.array([5.0, -3.0]))
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], 0.7 * np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]),
                               atol=1e-12)
    np.testing.assert_allclose(m[:, 2], [5.0, -3.0], atol=1e-10)
    # noisy points: the residual is stationary (normal equations of the 4-parameter model hold)
    noisy = dst + np.random.default_rng(1).normal(0, 2, dst.shape)
    m = similarity_transform(src, noisy)
    r = (src @ m[:, :2].T + m[:, 2] - noisy).ravel()
    jac = np.stack([np.stack([src[:, 0], src[:, 1], np.ones(5), np.zeros(5)], 1),
                    np.stack([src[:, 1], -src[:, 0], np.zeros(5), np.ones(5)], 1)], 1).reshape(10, 4)
    assert np.abs(jac.T @ r).max() < 1e-8
    with pytest.raises(FacetrainError):
        similarity_transform(np.zeros((5, 2)), dst)


def test_templates_for_other_sizes():
    np.testing.assert_allclose(template_for((112, 96)), TEMPLATE_112x96)
    np.testing.assert_allclose(template_for((112, 112)), TEMPLATE_112x96 + [8, 0])  # insightface's arcface_src
    np.testing.assert_allclose(template_for((128, 128)), (TEMPLATE_112x96 + [8, 0]) * 128 / 112)


@pytest.mark.parametrize("size", [(112, 96), (112, 112), (128, 128)])
def test_known_landmarks_land_on_the_template_within_a_pixel(size):
    template = template_for(size)
    landmarks = _similar(template, -0.35, 1.9, np.array([70.0, 40.0]))  # a tilted, larger face
    crop = warp_face(_dots(landmarks), landmarks, size)
    assert crop.size == (size[1], size[0]) and crop.mode == "RGB"
    err = np.linalg.norm(_centroids(crop, template) - template, axis=1)
    assert err.max() < 1.0, err


def test_landmarks_file_formats(tmp_path):
    f = tmp_path / "lm.txt"
    f.write_text("0000045/001.jpg 1 2 3 4 5 6 7 8 9 10\n0000045/002.jpg\t0\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\n\n")
    points = read_landmarks(f)
    assert points["0000045/001.jpg"].tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert points["0000045/002.jpg"].tolist() == points["0000045/001.jpg"].tolist()  # the label is skipped
    f.write_text("a.jpg 1 2 3\n")
    with pytest.raises(FacetrainError, match="lm.txt:1"):
        read_landmarks(f)


def test_align_tree_writes_resumes_and_reports_missing(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "aligned"
    rng = np.random.default_rng(2)
    lines = []
    for person in ("0000045", "0000099"):
        for k in range(3):
            landmarks = _similar(template_for((112, 96)), rng.uniform(-0.3, 0.3), rng.uniform(1.5, 2.2),
                                 rng.uniform(20, 60, 2))
            (src / person).mkdir(parents=True, exist_ok=True)
            _dots(landmarks).convert("RGB").save(src / person / f"{k:03d}.png")
            if (person, k) != ("0000099", 2):  # one image without landmarks
                lines.append(f"{person}/{k:03d}.png " + " ".join(f"{v:.3f}" for v in landmarks.ravel()))
    lines.append("0000099/404.jpg " + " ".join(["50"] * 10))  # a landmark line without its image
    (tmp_path / "lm.txt").write_text("\n".join(lines) + "\n")
    report = align_tree(src, tmp_path / "lm.txt", out, workers=1, progress=False)
    assert report["aligned_now"] == 5 and report["missing_landmarks"] == 1 and report["landmarks_without_image"] == 1
    assert (out / "missing_landmarks.txt").read_text() == "0000099/002.png\n"
    crop = Image.open(out / "0000045" / "000.jpg")
    assert crop.size == (96, 112)
    err = np.linalg.norm(_centroids(crop, TEMPLATE_112x96) - TEMPLATE_112x96, axis=1)
    assert err.max() < 1.0  # JPEG at quality 95 keeps the blobs in place
    (out / "0000045" / "001.jpg").unlink()  # as if the run had been killed before this crop
    again = align_tree(src, tmp_path / "lm.txt", out, workers=1, progress=False)
    assert again["aligned_now"] == 1 and again["already_aligned"] == 4
    assert json.loads((out / "align_report.json").read_text())["already_aligned"] == 4
