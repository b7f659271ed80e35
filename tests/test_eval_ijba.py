"""IJB-A: the real split 1/2 CSVs parse to the counts the protocols README gives; bad lines name file and line."""

import numpy as np
import pytest
from helpers import PROTOCOLS

from facetrain.errors import FacetrainError
from facetrain.eval.identification import split_probes
from facetrain.eval.ijba_protocol import face_keys, load_split, read_comparisons, read_templates

IJBA = PROTOCOLS / "ijba"
needs_real = pytest.mark.skipif(not (IJBA / "IJB-A_11_sets" / "split1").exists(),
                                reason="../shared/protocols/ijba (splits 1 and 2) not present")


@needs_real
@pytest.mark.parametrize("n", [1, 2])
def test_real_split_counts(n):
    split = load_split(IJBA / "IJB-A_11_sets", IJBA / "IJB-A_1N_sets", n)
    assert 16_268 <= len(split.verify.template) <= 19_097
    assert 1_814 <= len(set(split.verify.template.tolist())) <= 2_040
    assert 166 <= len(set(split.verify.subject.tolist())) <= 167
    subject = split.verify.subjects()
    same = np.array([subject[a] == subject[b] for a, b in split.comparisons])
    assert 11_648 <= len(same) <= 11_869 and 1_648 <= same.sum() <= 1_874 and 9_979 <= (~same).sum() <= 10_000
    gallery, probe = split.gallery.subjects(), split.probe.subjects()
    assert 112 <= len(gallery) <= 113 and len(set(gallery.values())) == len(gallery)  # one template per subject
    assert 1_652 <= len(probe) <= 1_882
    labels = np.array(list(probe.values()))
    probes = split_probes(np.zeros((len(labels), len(gallery))), labels, np.array(list(gallery.values())))
    assert 1_062 <= len(probes.mate_rank) <= 1_277 and 526 <= len(probes.nonmated_max) <= 605
    assert split.verify.file[0].startswith(("img/", "frame/")) and np.isfinite(split.verify.box).all()
    # template ids are shared between the 1:1 metadata and the 1:N probes (same content)
    assert set(split.verify.template.tolist()) & set(split.probe.template.tolist())


@needs_real
def test_real_files_are_crlf_and_keys_are_files():
    path = IJBA / "IJB-A_11_sets" / "split1" / "verify_metadata_1.csv"
    assert path.read_bytes().split(b"\n")[0].endswith(b"\r")
    rows = read_templates(path)
    keys = face_keys([rows])
    assert all(k == f for (f, _), k in keys.items())  # one box per file in split 1: the key is FILE itself


def _csv(tmp_path, body, name="m.csv"):
    header = ("TEMPLATE_ID,SUBJECT_ID,FILE,MEDIA_ID,SIGHTING_ID,FRAME,FACE_X,FACE_Y,FACE_WIDTH,FACE_HEIGHT,"
              "FACE_YAW\r\n")
    path = tmp_path / name
    path.write_bytes((header + body).encode())
    return path


def test_parsing_edge_cases(tmp_path):
    rows = read_templates(_csv(tmp_path, "1,10,img/5.jpg,5,1,,1,2,3,4,\r\n2,11,frame/6_00030.png,6,2,30,,,,,\r\n"))
    assert list(rows.template) == [1, 2] and rows.file == ["img/5.jpg", "frame/6_00030.png"]
    assert np.isnan(rows.box[1]).all() and list(rows.line) == [2, 3]  # empty fields are missing annotation
    with pytest.raises(FacetrainError, match=r"m.csv:3: TEMPLATE_ID 'x'"):
        read_templates(_csv(tmp_path, "1,10,img/5.jpg,5,1,,1,2,3,4,\r\nx,10,img/5.jpg,5,1,,1,2,3,4,\r\n"))
    with pytest.raises(FacetrainError, match=r"m.csv:2: 3 fields"):
        read_templates(_csv(tmp_path, "1,10,img/5.jpg\r\n"))
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("TEMPLATE,SUBJECT\n")
    with pytest.raises(FacetrainError, match=r"h.csv:1: the header lacks"):
        read_templates(bad_header)
    comparisons = tmp_path / "c.csv"
    comparisons.write_bytes(b"1,2\r\n3,4\r\n5,6,7\r\n")
    with pytest.raises(FacetrainError, match=r"c.csv:3: expected"):
        read_comparisons(comparisons)


def test_a_file_with_two_boxes_gets_two_keys(tmp_path):
    rows = read_templates(_csv(tmp_path, "1,10,img/5.jpg,5,1,,1,2,3,4,\r\n2,11,img/5.jpg,5,2,,9,9,3,4,\r\n"))
    keys = set(face_keys([rows]).values())
    assert keys == {"img/5.jpg@1,2,3,4", "img/5.jpg@9,9,3,4"}
