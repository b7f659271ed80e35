"""The MTCNN face detector on real photos: faces and hand-marked landmarks found, none where there is no face,
batching and determinism, the choice among several faces, geometry that follows the photo."""

import importlib.util

import numpy as np
import pytest
import torch
from photo_helpers import FACES, NO_FACES, hand_landmarks, lfw_like, photo, transformed
from PIL import Image

from facetrain.detect import detect_all, detect_faces, pick_face
from facetrain.detect.boxes import nms_min, pyramid
from facetrain.detect.weights import weights_folder
from facetrain.errors import FacetrainError


@pytest.fixture(scope="module")
def found():
    return dict(zip(FACES + NO_FACES, detect_all([photo(n) for n in FACES + NO_FACES]), strict=True))


@pytest.mark.parametrize("name", FACES)
def test_the_face_and_its_landmarks_are_found_within_a_few_pixels(found, name):
    faces = found[name]
    assert len(faces) == 1 and faces[0].score > 0.99
    marks = hand_landmarks(name)
    x1, y1, x2, y2 = faces[0].box
    assert x1 < marks[:, 0].min() and marks[:, 0].max() < x2 and y1 < marks[:, 1].min() and marks[:, 1].max() < y2
    err = np.linalg.norm(faces[0].landmarks - marks, axis=1)
    # hand marks are good to ~1.5 px; MTCNN's landmark error is a few % of the eye distance (here 43 and 83 px)
    assert err.max() < 6.0 and err.mean() < 4.0, err


@pytest.mark.parametrize("name", NO_FACES)
def test_no_face_where_there_is_none(found, name):
    assert found[name] == []
    assert detect_faces([photo(name)]) == [None]


def test_batched_equals_one_by_one_and_runs_are_identical(found):
    cut, _ = lfw_like("astronaut.jpg")
    mirrored = cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    batch = detect_all([cut, photo("coffee.jpg"), mirrored])
    alone = detect_all([mirrored])
    assert len(batch[0]) == len(batch[2]) == 1 and batch[1] == []
    np.testing.assert_array_equal(batch[2][0].landmarks, alone[0][0].landmarks)  # same-size photos share a batch
    np.testing.assert_array_equal(detect_all([cut])[0][0].landmarks, batch[0][0].landmarks)
    # the mirror image's left eye is the photo's right eye, mirrored (x -> 249 - x): the order is as seen
    a, b = batch[0][0].landmarks, batch[2][0].landmarks
    mirror = np.stack([249 - b[:, 0], b[:, 1]], 1)[[1, 0, 2, 4, 3]]
    assert np.abs(mirror - a).max() < 2.5, mirror - a


def test_landmarks_follow_a_shifted_and_rescaled_photo(found):
    scale, shift = 0.62, (37.0, -21.0)
    moved = transformed(photo("grace_hopper.jpg"), scale, shift, (400, 360))
    [[face]] = detect_all([moved])
    expected = scale * found["grace_hopper.jpg"][0].landmarks + np.array(shift)
    assert np.linalg.norm(face.landmarks - expected, axis=1).max() < 3.0


def test_several_faces_the_largest_or_the_central():
    canvas = Image.new("RGB", (800, 600), (128, 128, 128))
    canvas.paste(photo("grace_hopper.jpg").resize((307, 360)), (0, 240))  # a large face, off centre
    small = photo("astronaut.jpg").resize((256, 256))  # a small face (eyes 21 px apart) at the centre
    canvas.paste(small, (400 - 111, 300 - 60))
    [faces] = detect_all([canvas])
    largest, central = pick_face(faces, canvas.size, "largest"), pick_face(faces, canvas.size, "central")
    assert largest.faces == central.faces == 2
    np.testing.assert_allclose(largest.landmarks, hand_landmarks("grace_hopper.jpg") * 0.6 + [0, 240], atol=6)
    np.testing.assert_allclose(central.landmarks, hand_landmarks("astronaut.jpg") * 0.5 + [289, 240], atol=4)
    assert pick_face([], (10, 10)) is None
    with pytest.raises(FacetrainError, match="pick='biggest'"):
        pick_face(faces, canvas.size, "biggest")


def test_pyramid_and_min_overlap_nms():
    # 250 px, min face 20: first scale 0.6 (150 px), then 0.709^k until the short side is under 12 px
    scales = pyramid(250, 250, 20, 0.709)
    np.testing.assert_allclose(scales, [0.6 * 0.709**k for k in range(8)])
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709

    boxes = torch.tensor([[0, 0, 100, 100], [10, 10, 40, 40], [90, 90, 200, 200], [0, 0, 100, 100.0]])
    scores, groups = torch.tensor([0.9, 0.8, 0.7, 0.95]), torch.tensor([0, 0, 0, 1])
    # the small box lies inside the big one (IoU 0.09, but 100% of the smaller): dropped; other image kept
    assert nms_min(boxes, scores, groups, 0.7).tolist() == [3, 0, 2]


def test_a_photo_smaller_than_the_smallest_face_has_none():
    assert detect_all([Image.new("RGB", (15, 30), (200, 150, 120))]) == [[]]


@pytest.mark.gpu
def test_the_gpu_finds_what_the_cpu_finds(found):
    """Not run where there is no GPU (and not yet run on one: the development machine had none)."""
    on_gpu = detect_all([photo(n) for n in FACES + NO_FACES], device="cuda")
    for name, faces in zip(FACES + NO_FACES, on_gpu, strict=True):
        assert len(faces) == len(found[name])
        for a, b in zip(faces, found[name], strict=True):
            assert abs(a.score - b.score) < 1e-3 and np.abs(a.landmarks - b.landmarks).max() < 0.1


def test_missing_weights_say_how_to_install_them(monkeypatch):
    assert (weights_folder() / "onet.pt").is_file()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FacetrainError, match="make setup"):
        weights_folder()
