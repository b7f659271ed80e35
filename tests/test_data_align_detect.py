"""`facetrain data align` without landmarks: faces detected in LFW-like photos, photos without a face or not images
skipped and listed, the landmarks written for the next run, resume, and the crops straight into a pack."""

import json

import numpy as np
import pytest
from helpers import run_cli
from photo_helpers import lfw_like, photo, transformed
from PIL import Image

from facetrain.data.images.align_tree import align_tree
from facetrain.data.images.landmarks import landmarks_line, read_landmarks, read_landmarks_log

SHIFT = (0.8, (30.0, 20.0))  # the second photo of Eileen Collins: the first, scaled by 0.8 and moved


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An LFW-like tree (250x250): two photos of one person (one shifted and rescaled), two of another (one with a
    second, smaller face), a photo without a face and a file that is no image. Returns the tree and the
    hand-marked landmarks."""
    src = tmp_path_factory.mktemp("photos")
    (src / "Eileen_Collins").mkdir()
    (src / "Grace_Hopper").mkdir()
    eileen, eileen_marks = lfw_like("astronaut.jpg")
    grace, grace_marks = lfw_like("grace_hopper.jpg")
    eileen.save(src / "Eileen_Collins" / "Eileen_Collins_0001.jpg", quality=95)
    transformed(eileen, SHIFT[0], SHIFT[1], (250, 250)).save(src / "Eileen_Collins" / "Eileen_Collins_0002.jpg",
                                                              quality=95)
    grace.save(src / "Grace_Hopper" / "Grace_Hopper_0001.jpg", quality=95)
    photo("coffee.jpg").resize((250, 250)).save(src / "Grace_Hopper" / "Grace_Hopper_0002.jpg")
    (src / "Grace_Hopper" / "Grace_Hopper_0003.jpg").write_bytes(b"these are notes, not a photo\n")
    grace.paste(photo("astronaut.jpg").resize((160, 160)).crop((40, 10, 110, 80)), (180, 0))  # a second, small face
    grace.save(src / "Grace_Hopper" / "Grace_Hopper_0004.jpg", quality=95)
    marks = {"Eileen_Collins/Eileen_Collins_0001.jpg": eileen_marks,
             "Eileen_Collins/Eileen_Collins_0002.jpg": SHIFT[0] * eileen_marks + SHIFT[1],
             "Grace_Hopper/Grace_Hopper_0001.jpg": grace_marks, "Grace_Hopper/Grace_Hopper_0004.jpg": grace_marks}
    return src, marks


def _pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_detect_align_resume_and_reuse_the_landmarks(photos, tmp_path):
    src, marks = photos
    out = tmp_path / "aligned"
    report = align_tree(src, None, out, workers=1, progress=False)
    assert (report["aligned_now"], report["detected_now"], report["no_face"], report["unreadable"]) == (4, 4, 1, 1)
    assert report["several_faces"] == 1 and report["pick"] == "largest"
    assert (out / "several_faces.txt").read_text() == "Grace_Hopper/Grace_Hopper_0004.jpg\t2\n"
    assert report["no_face_files"][0][0] == "Grace_Hopper/Grace_Hopper_0002.jpg"
    assert (out / "no_face.txt").read_text().startswith("Grace_Hopper/Grace_Hopper_0002.jpg\tno face")
    assert report["unreadable_files"][0][0] == "Grace_Hopper/Grace_Hopper_0003.jpg"
    found = read_landmarks(out / "landmarks.txt")
    assert sorted(found) == sorted(marks) and not (out / ".landmarks.partial").exists()
    for rel, points in marks.items():
        assert np.linalg.norm(found[rel] - points, axis=1).max() < 4.0, rel
    # the shifted, rescaled photo: its landmarks move with it and it gives the same aligned crop (up to the
    # detail lost in shrinking it), while another person's crop is far from it
    first, second = found["Eileen_Collins/Eileen_Collins_0001.jpg"], found["Eileen_Collins/Eileen_Collins_0002.jpg"]
    assert np.abs(SHIFT[0] * first + SHIFT[1] - second).max() < 1.5
    a, b = (_pixels(out / "Eileen_Collins" / f"Eileen_Collins_000{k}.jpg") for k in (1, 2))
    other = _pixels(out / "Grace_Hopper" / "Grace_Hopper_0001.jpg")
    assert np.abs(a - b).mean() < 8 < 40 < np.abs(a - other).mean(), (np.abs(a - b).mean(), np.abs(a - other).mean())

    # resume: a crop lost (killed run) is rewritten from the landmarks already found, without detecting again
    kept = _pixels(out / "Eileen_Collins" / "Eileen_Collins_0002.jpg")
    (out / "Eileen_Collins" / "Eileen_Collins_0002.jpg").unlink()
    again = align_tree(src, None, out, workers=0, progress=False)
    assert (again["aligned_now"], again["detected_now"], again["already_aligned"], again["no_face"]) == (1, 0, 3, 1)
    # the same crop, up to the landmarks file's 0.01-pixel rounding (and JPEG's quantization of that)
    assert np.abs(_pixels(out / "Eileen_Collins" / "Eileen_Collins_0002.jpg") - kept).mean() < 1.5
    assert read_landmarks(out / "landmarks.txt").keys() == found.keys()

    # another crop size from the landmarks file: no detection; the photo without a face and the non-image have none
    other_size = align_tree(src, out / "landmarks.txt", tmp_path / "aligned112", size=(112, 112), workers=0,
                            progress=False)
    assert (other_size["aligned_now"], other_size["missing_landmarks"]) == (4, 2) and "detected_now" not in other_size
    assert Image.open(tmp_path / "aligned112" / "Grace_Hopper" / "Grace_Hopper_0001.jpg").size == (112, 112)


def test_a_torn_landmarks_log_keeps_its_complete_lines(tmp_path):
    log = tmp_path / "log"
    log.write_text(landmarks_line("a/1.jpg", np.arange(10.0)) + landmarks_line("a/2.jpg", np.ones(10))[:20])
    got = read_landmarks_log(log)
    assert list(got) == ["a/1.jpg"] and got["a/1.jpg"].tolist() == np.arange(10.0).reshape(5, 2).tolist()


def test_cli_aligns_straight_into_a_pack_and_reports_each_skipped_photo(photos, tmp_path):
    src, _ = photos
    args = [f"align.src={src}", f"align.out={tmp_path / 'faces.pack'}", "align.to=raw", "align.workers=0",
            "align.progress=false", f"paths.runs={tmp_path / 'runs'}"]
    out = run_cli("data", "align", *args, cwd=tmp_path).stdout
    assert "skipped Grace_Hopper/Grace_Hopper_0002.jpg: no face of 20+ pixels found" in out
    assert "skipped Grace_Hopper/Grace_Hopper_0003.jpg:" in out
    meta = json.loads((tmp_path / "faces.pack" / "pack.json").read_text())
    assert meta["images"] == 4 and meta["classes"] == ["Eileen_Collins", "Grace_Hopper"] and meta["size"] == [112, 96]
    assert len(read_landmarks(tmp_path / "faces.pack" / "landmarks.txt")) == 4
    assert not (tmp_path / ".faces.pack.crops").exists()  # the crops it was packed from are gone
    again = run_cli("data", "align", *args, cwd=tmp_path, check=False)
    assert again.returncode == 2 and "faces.pack exists" in again.stderr and "Traceback" not in again.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("data", "align", "align.src=empty", "align.out=x", f"paths.runs={tmp_path / 'runs'}",
                    cwd=tmp_path, check=False)
    assert empty.returncode == 2 and "no images found under" in empty.stderr and not (tmp_path / "x").exists()
