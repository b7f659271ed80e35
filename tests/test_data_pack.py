"""Packs: folder and pack loaders give identical tensors for the same indices; the pack command's checks."""

import shutil

import numpy as np
import pytest
import torch
from data_helpers import make_tree
from helpers import compose_config
from hydra.utils import instantiate

from facetrain.data import FaceFolder, PackedFaces
from facetrain.data.formats.pack import pack_tree
from facetrain.errors import FacetrainError
from facetrain.train import train


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("pack") / "tree", {"a": 3, "b": 5, "c": 4}, size=(60, 50))
    make_tree(root, {"c": 1}, size=(30, 30), ext=".png", seed=5)  # another size and format
    (root / "b" / "broken.jpg").write_text("not an image")
    return root


@pytest.mark.parametrize("fmt, fit", [("raw", "resize"), ("jpeg", "resize"), ("raw", "crop")])
def test_folder_and_pack_yield_identical_samples(tree, tmp_path, fmt, fit):
    size = (28, 24)
    meta = pack_tree(tree, tmp_path / "pack", fmt, size, fit, workers=1, shard_mb=1, progress=False)
    assert meta["images"] == 13 and meta["bad"][0][0] == "b/broken.jpg"
    folder = FaceFolder(tree, size, fit=fit, progress=False)
    packed = PackedFaces(tmp_path / "pack", size, fit=fit)
    good = [j for j in range(len(folder)) if folder._name(j) != "b/broken.jpg"]
    assert len(packed) == len(good) == 13 and packed.classes == folder.classes
    for k, j in enumerate(good):
        (x, y), (px, py) = folder[j], packed[k]
        assert packed._name(k) == folder._name(j) and y == py
        assert x.dtype == px.dtype == torch.uint8 and torch.equal(x, px), folder._name(j)
    # through a DataLoader with worker processes, each opening its own shard handles
    loader = torch.utils.data.DataLoader(packed, batch_size=13, num_workers=2)
    batch, labels = next(iter(loader))
    assert torch.equal(batch, torch.stack([packed[k][0] for k in range(13)]))
    assert labels.tolist() == [packed[k][1] for k in range(13)]


def test_raw_pack_shards_and_selection(tree, tmp_path):
    meta = pack_tree(tree, tmp_path / "pack", "raw", (28, 24), workers=2, shard_mb=0.01, progress=False)
    assert len(meta["shards"]) == 3  # 10 KiB shards hold 5 crops of 28*24*3 bytes: 13 = 5 + 5 + 3
    assert torch.equal(PackedFaces(tmp_path / "pack", (28, 24))[12][0], FaceFolder(tree, (28, 24), progress=False)[13][0])
    packed = PackedFaces(tmp_path / "pack", (28, 24), min_images=4)
    assert packed.classes == ["b", "c"] and len(packed) == 10
    assert np.bincount(packed.labels).tolist() == [5, 5]
    with pytest.raises(FacetrainError, match="exists"):
        pack_tree(tree, tmp_path / "pack", "raw", progress=False)
    broken = tmp_path / "broken"
    (broken / "a").mkdir(parents=True)
    (broken / "a" / "0.jpg").write_text("not an image")
    with pytest.raises(FacetrainError, match="no readable image"):  # it deleted the old pack, then failed
        pack_tree(broken, tmp_path / "pack", "raw", (28, 24), overwrite=True, progress=False)
    assert len(PackedFaces(tmp_path / "pack", (28, 24))) == 13 and sorted(p.name for p in tmp_path.iterdir()) == [
        "broken", "pack"]  # the old pack, and no staging folder left
    assert len(pack_tree(tree, tmp_path / "pack", "raw", (28, 24), shard_mb=1, overwrite=True,
                         progress=False)["shards"]) == 1
    copy = shutil.copytree(tree, tmp_path / "copy")
    for out in (copy, tmp_path):  # overwrite=true removed the images, then found none to pack
        with pytest.raises(FacetrainError, match=r"pack.out=.* (is|holds) pack.src=.* would delete the input"):
            pack_tree(copy, out, "raw", overwrite=True, progress=False)
    assert sorted(copy.rglob("*")) == sorted(copy / p.relative_to(tree) for p in tree.rglob("*"))
    for size, shard_mb, message in (((0, 24), 1, r"pack.size\[0\]=0 must be an integer >= 1"),
                                    ((28, 24), 0, "shard_mb=0 must be")):
        with pytest.raises(FacetrainError, match=message):  # a traceback; a shard per image
            pack_tree(tree, tmp_path / "other", "raw", size, shard_mb=shard_mb, progress=False)
    with pytest.raises(FacetrainError, match="not a pack"):
        PackedFaces(tree)


def test_pack_command_then_train_from_the_pack(tree, tmp_path, train_cfg):
    out = tmp_path / "pack"
    cfg = compose_config("data", ["action=pack", f"pack.src={tree}", f"pack.out={out}", "pack.size=[32,32]",
                                  "pack.workers=1", "pack.progress=false"])
    meta = instantiate(cfg.actions[cfg.action])(cfg)
    assert meta["images"] == 13 and (out / "pack.json").exists()
    run = tmp_path / "run"
    metrics = train(train_cfg("data=packed", f"data.root={out}", "input_size=[32,32]", "batch_size=6", run_dir=run))
    assert metrics["train/iterations"] == 4
    assert (run / "bad_files.tsv").read_text().startswith("b/broken.jpg\t")
