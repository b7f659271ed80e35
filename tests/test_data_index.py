"""File index (cache, re-index on change), identity subsets and evaluation-set exclusion, with exact counts."""

import json

import pytest
from data_helpers import make_tree, write_image

from facetrain.data import FaceFolder
from facetrain.data.formats.file_index import load_index, scan_identity_folders
from facetrain.data.selection.exclusion import normalize_name, overlapping_identities, read_identity_names
from facetrain.data.selection.subset import select_identities
from facetrain.errors import FacetrainError

COUNTS = {"ann": 5, "bob": 2, "cid": 8, "dee": 3, "eve": 8, "fay": 1}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("tree") / "casia", COUNTS)
    write_image(root / "dee" / "extra.PNG", __import__("numpy").random.default_rng(1))  # any extension, any case
    (root / "dee" / "notes.txt").write_text("not an image extension: ignored")
    (root / "empty_person").mkdir()
    return root


def test_index_counts_and_order(tree):
    index = scan_identity_folders(tree)
    assert index.classes == ["ann", "bob", "cid", "dee", "eve", "fay"]  # the empty folder gets no label
    assert len(index.paths) == 28 and index.paths[0] == "ann/000.jpg"
    assert index.paths.count("dee/extra.PNG") == 1
    assert [index.labels.count(k) for k in range(6)] == [5, 2, 8, 4, 8, 1]


def test_index_is_cached_and_rebuilt_when_the_tree_changes(tree, tmp_path):
    cache = tmp_path / "cache"
    first = load_index(tree, cache, progress=False)
    assert len(list(cache.glob("index-*.json"))) == 1
    (tree / "fay" / "000.jpg").rename(tree / "fay" / "zzz.jpg")  # renaming touches the folder's mtime
    again = load_index(tree, cache, progress=False)
    assert "fay/zzz.jpg" in again.paths and "fay/000.jpg" not in again.paths
    (tree / "fay" / "zzz.jpg").rename(tree / "fay" / "000.jpg")
    assert load_index(tree, cache, progress=False).paths == first.paths


def test_subset_steps_are_exact_and_reproducible():
    names, report = select_identities(COUNTS, min_images=3)
    assert names == ["ann", "cid", "dee", "eve"] and report["removed_by_min_images"] == 2
    names, report = select_identities(COUNTS, min_images=2, max_identities=3)
    assert names == ["ann", "cid", "eve"] and report["removed_by_max_identities"] == 2  # 8, 8, 5 images
    names, _ = select_identities(COUNTS, max_identities=2, order="name")
    assert names == ["ann", "bob"]
    names, report = select_identities(COUNTS, keep=["bob", "cid", "zed"], min_images=2)
    assert names == ["bob", "cid"] and report["keep_list_missing"] == 1
    a = select_identities(COUNTS, max_identities=3, order="random", seed=4)[0]
    assert a == select_identities(COUNTS, max_identities=3, order="random", seed=4)[0] and len(a) == 3


def test_dataset_subset_from_config_keys(tree, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("# identities to keep\nann\ncid 8\neve\nfay\n")
    ds = FaceFolder(tree, (16, 16), keep_identities=str(keep), min_images=2, max_identities=2, progress=False)
    assert ds.classes == ["cid", "eve"] and len(ds) == 16 and ds.num_classes == 2
    assert sorted(set(ds.labels.tolist())) == [0, 1]
    image, label = ds[0]
    assert image.shape == (3, 16, 16) and label == 0 and ds._name(0) == "cid/000.jpg"
    report = ds.write_report(tmp_path / "run")
    assert report["images_per_identity"] == {"min": 8, "median": 8.0, "max": 8}
    assert json.loads((tmp_path / "run" / "data_report.json").read_text())["identities"] == 2
    assert (tmp_path / "run" / "identities.txt").read_text() == "cid\neve\n"
    capped = FaceFolder(tree, (16, 16), min_images=2, max_images=3, progress=False)
    assert capped.classes == ["ann", "bob", "cid", "dee", "eve"] and len(capped) == 3 + 2 + 3 + 3 + 3
    assert [capped._name(j) for j in range(3)] == ["ann/000.jpg", "ann/001.jpg", "ann/002.jpg"]
    assert capped.report()["selection"]["removed_by_max_images"] == 2 + 5 + 1 + 5
    with pytest.raises(FacetrainError, match="no identity is left"):
        FaceFolder(tree, (16, 16), min_images=100, progress=False)


def test_name_matching():
    assert normalize_name("Aaron_Eckhart") == normalize_name("aaron  eckhart") == normalize_name("Aaron-Eckhart")
    assert normalize_name("José_María_Aznar") == "jose maria aznar"
    assert normalize_name("Jean-Claude_Van_Damme") == "jean claude van damme"


def test_exclusion_of_evaluation_identities(tmp_path):
    lfw = tmp_path / "lfw"
    for person in ("Aaron_Eckhart", "Zico", "George_W_Bush"):
        (lfw / person).mkdir(parents=True)
    names_file = tmp_path / "lfw-names.txt"
    names_file.write_text("Aaron_Eckhart\t1\nGeorge_W_Bush\t530\nZico\t3\n")
    classes = ["0000045", "0000099", "0000107", "aaron eckhart"]
    id_names = tmp_path / "names.txt"
    id_names.write_text('0000045\tAaron_Eckhart\n0000099 "George W. Bush"@en\n0000107 Pele\n')
    mapping = read_identity_names(id_names)
    assert mapping["0000099"] == "George W. Bush"
    # folders matched by their names from the mapping file, or by their own folder name
    for source in ("lfw", str(names_file)):
        removed = overlapping_identities(classes, [source], {"lfw": str(lfw)}, mapping)
        assert removed == ["0000045", "0000099", "aaron eckhart"]
    with pytest.raises(FacetrainError, match="neither a known evaluation set"):
        overlapping_identities(classes, ["ytf"], {"lfw": str(lfw)})


def test_dataset_excludes_and_reports(tree, tmp_path):
    names = tmp_path / "eval-names.txt"
    names.write_text("Cid\t2\nEVE\t1\nsomeone_else\t4\n")
    ds = FaceFolder(tree, (16, 16), exclude_identities_of=str(names), progress=False)
    assert ds.classes == ["ann", "bob", "dee", "fay"] and len(ds) == 12
    report = ds.write_report(tmp_path / "run")
    assert report["selection"]["excluded_identities"] == 2 and report["selection"]["excluded"] == ["cid", "eve"]
    assert report["selection"]["identities_before"] == 6  # the tree as found, the excluded two included
