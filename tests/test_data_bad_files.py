"""A tree salted with broken files trains without crashing; each broken file is reported in the run directory."""

import json
import multiprocessing

import numpy as np
import pytest
import torch
from data_helpers import make_tree

from facetrain.data import FaceFolder
from facetrain.data.selection.bad_files import BadFileLog, check_image
from facetrain.train import train

BROKEN = {"p1/truncated.jpg", "p2/empty.jpg", "p3/text.jpg", "p4/folder.jpg"}


@pytest.fixture(scope="module")
def salted(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("salted") / "tree", {f"p{k}": 5 for k in range(1, 5)}, size=(56, 48))
    good = (root / "p1" / "000.jpg").read_bytes()
    (root / "p1" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "p2" / "empty.jpg").write_bytes(b"")
    (root / "p3" / "text.jpg").write_text("this is a text file, not a JPEG\n")
    (root / "p4" / "folder.jpg").mkdir()
    return root


def test_each_kind_of_broken_file_is_detected(salted):
    for rel in BROKEN:
        assert check_image(salted / rel) is not None, rel
    assert check_image(salted / "p1" / "000.jpg") is None


def test_a_bad_sample_is_replaced_by_the_next_good_one(salted):
    ds = FaceFolder(salted, (16, 16), progress=False)
    assert {p for p, _ in ds.bad_at_index} == {"p2/empty.jpg", "p4/folder.jpg"}  # cheap checks at scan time
    names = [ds._name(j) for j in range(len(ds))]
    j = names.index("p3/text.jpg")
    image, label = ds[j]
    nxt, nxt_label = ds[j + 1]
    assert torch.equal(image, nxt) and label == nxt_label
    assert torch.equal(ds[names.index("p1/truncated.jpg")][0], ds[names.index("p1/truncated.jpg") + 1][0])


def _log_twice(path):
    log = BadFileLog(path)
    log.write([("a.jpg", "truncated"), ("b.jpg", "empty")])
    log.write([("a.jpg", "truncated")])


def test_processes_logging_the_same_files_leave_one_line_each(tmp_path):
    path = tmp_path / "bad_files.tsv"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_log_twice, [path] * 8)
    assert sorted(path.read_text().splitlines()) == ["a.jpg\ttruncated", "b.jpg\tempty"]


@pytest.mark.parametrize("verify, workers", [(False, 2), (True, 0)], ids=["lazy-2-workers", "verify"])
def test_salted_tree_trains_and_reports_every_broken_file(salted, train_cfg, tmp_path, verify, workers):
    run = tmp_path / "run"
    # 22 indexed files in 2 batches of 11: every file is read in each epoch, by either worker
    cfg = train_cfg("data=folder", f"data.root={salted}", f"data.verify={str(verify).lower()}",
                    f"data.num_workers={workers}", f"data.cache_dir={tmp_path / 'cache'}", "batch_size=11",
                    "iterations=6", run_dir=run)
    metrics = train(cfg)
    assert metrics["train/iterations"] == 6 and np.isfinite(metrics["train/loss"])
    listed = [line.split("\t")[0] for line in (run / "bad_files.tsv").read_text().splitlines()]
    assert sorted(listed) == sorted(BROKEN)  # one line per file, however many workers met it
    report = json.loads((run / "data_report.json").read_text())
    assert report["identities"] == 4
    assert report["bad_files_at_index"] == (4 if verify else 2)
    assert report["images"] == (20 if verify else 22)
