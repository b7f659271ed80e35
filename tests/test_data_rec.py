"""data=rec: insightface RecordIO packs read without MXNet, against packs an independent writer here produces."""

import io
import shutil
import struct

import numpy as np
import pytest
import torch
from data_helpers import make_tree
from helpers import compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate
from PIL import Image

from facetrain.data import FaceFolder, PKBatchSampler, RankShare, RecFaces
from facetrain.data.formats.rec_convert import folder_to_rec, rec_to_folder
from facetrain.data.formats.recordio import frame_record, parse_record
from facetrain.data.images.image_io import decode_image
from facetrain.errors import FacetrainError
from facetrain.train import train

# -- an independent minimal writer: MXNet's framing and image header, straight from the format's description --
MAGIC = struct.pack("<I", 0xCED7230A)


def frame(payload: bytes) -> bytes:
    """magic, (cflag << 29 | length), bytes; split where the magic word sits at a multiple of 4; pad to 4."""
    cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i : i + 4] == MAGIC]
    starts, ends = [0] + [c + 4 for c in cuts], cuts + [len(payload)]
    flags = [0] if not cuts else [1] + [2] * (len(cuts) - 1) + [3]
    body = b"".join(MAGIC + struct.pack("<I", f << 29 | (e - s)) + payload[s:e]
                    for f, s, e in zip(flags, starts, ends, strict=True))
    return body + b"\0" * (-len(payload) % 4)


def record(image: bytes, label, id_: int = 0, id2: int = 0) -> bytes:
    if isinstance(label, tuple):  # flag = number of float32 labels that follow the header
        return struct.pack("<IfQQ", len(label), 0.0, id_, id2) + struct.pack(f"<{len(label)}f", *label) + image
    return struct.pack("<IfQQ", 0, label, id_, id2) + image


def write_pack(root, records: dict, idx_order=None, prop=None):
    """train.rec with the records in key order, train.idx listing them in `idx_order` (default: key order)."""
    root.mkdir(parents=True, exist_ok=True)
    data, offsets = b"", {}
    for key in sorted(records):
        offsets[key] = len(data)
        data += frame(records[key])
    (root / "train.rec").write_bytes(data)
    (root / "train.idx").write_text("".join(f"{k}\t{offsets[k]}\n" for k in (idx_order or sorted(records))))
    if prop:
        (root / "property").write_text(prop)
    return root


def jpeg(seed: int, size=(20, 16), fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def header_pack(root, labels, prop=None, drop_keys=()):
    """insightface's layout: record 0 (first identity key, end), images 1..N, one (start, end) record per identity."""
    n, classes = len(labels), max(labels) + 1
    recs = {0: record(b"", (float(n + 1), float(n + 1 + classes)))}
    recs |= {k + 1: record(jpeg(k), float(lab), id_=k + 1) for k, lab in enumerate(labels)}
    for c in range(classes):
        keys = [k + 1 for k, lab in enumerate(labels) if lab == c]
        recs[n + 1 + c] = record(b"", (float(keys[0]), float(keys[-1] + 1)))
    return write_pack(root, recs, [k for k in sorted(recs) if k not in drop_keys], prop)


def size(image: bytes):
    return tuple(decode_image(image).shape[1:])


# -- the framing ---------------------------------------------------------------------------------------------
MAGIC_ID = 0xCED7230A | 0xCED7230A << 32  # id's two words and id2's first are the magic word: 4 parts, one empty


def test_framing_matches_the_independent_writer_and_reads_back():
    for payload in (b"", b"abc", b"abcd", record(jpeg(1), 2.0, MAGIC_ID, 0xCED7230A), MAGIC + b"xy" + MAGIC,
                    b"x" + MAGIC + b"yyy"):  # the last: an unaligned magic word stays in one part
        framed = frame(payload)
        assert frame_record(payload) == framed and len(framed) % 4 == 0
        assert parse_record(framed) == (payload, len(framed))
    parts = frame(record(jpeg(1), 2.0, MAGIC_ID, 0xCED7230A))
    flags = [struct.unpack_from("<I", parts, i + 4)[0] >> 29 for i in range(0, len(parts) - 3, 4)
             if parts[i : i + 4] == MAGIC]
    assert flags == [1, 2, 2, 3]


def test_pack_without_header_gaps_extra_labels_and_a_multi_part_record(tmp_path):
    images = {0: jpeg(0), 3: jpeg(3, fmt="PNG"), 4: jpeg(4), 7: jpeg(7), 10: jpeg(10)}
    recs = {0: record(images[0], 1.0), 3: record(images[3], 0.0, MAGIC_ID, 0xCED7230A),  # 4 parts on disk
            4: record(images[4], (2.0, 0.5, 7.0)), 7: record(images[7], 1.0), 10: record(images[10], 2.0)}
    root = write_pack(tmp_path / "p", recs, idx_order=[7, 0, 10, 3, 4])  # keys with gaps, lines not in order
    data = RecFaces(root, (20, 16))
    assert data.keys.tolist() == [0, 3, 4, 7, 10] and data.labels.tolist() == [1, 0, 2, 1, 2]
    assert data.classes == ["0", "1", "2"] and data.bad_at_index == []
    for j, key in enumerate(data.keys.tolist()):
        assert torch.equal(data[j][0], decode_image(images[key], (20, 16))), key
    idx = root / "train.idx"
    idx.write_text("\n" + idx.read_text().replace("\t", " ") + "\n")  # blank lines, spaces: parsed line by line
    assert RecFaces(root, (20, 16)).keys.tolist() == [0, 3, 4, 7, 10]
    # property gives the class count (here more classes than labels: an identity without images)
    (root / "property").write_text("12,20,16\n")
    data = RecFaces(root, (20, 16), min_images=0)
    assert data.classes == [f"{c:02d}" for c in range(12)]


def test_pack_with_header_reads_labels_from_the_identity_records(tmp_path, caplog):
    labels = [0, 0, 1, 2, 2, 2]
    data = RecFaces(header_pack(tmp_path / "h", labels, prop="3,20,16"), (20, 16))
    assert data.keys.tolist() == [1, 2, 3, 4, 5, 6] and data.labels.tolist() == labels
    assert "squeezed" not in caplog.text
    RecFaces(tmp_path / "h", (20, 20))  # the zoo's 112x112 crops at the default 112x96 would be squeezed: said once
    assert "holds 20x16 crops (its property file) but input_size is 20x20: they are squeezed" in caplog.text
    assert torch.equal(data[3][0], decode_image(jpeg(3), (20, 16)))
    # identity records missing from the .idx: labels come from the image headers instead
    fallback = RecFaces(header_pack(tmp_path / "f", labels, drop_keys=(8,)), (20, 16))
    assert fallback.labels.tolist() == labels
    # an image key of record 0's range that the .idx lacks is listed, not fatal
    gap = RecFaces(header_pack(tmp_path / "g", labels, drop_keys=(2,)), (20, 16))
    assert gap.keys.tolist() == [1, 3, 4, 5, 6]
    assert gap.bad_at_index == [("train.rec:2", "key 2 is an image by record 0 but missing from train.idx")]
    # identity subsets by the zero-padded label names
    assert RecFaces(tmp_path / "h", (20, 16), min_images=2).classes == ["0", "2"]


def test_truncated_pack_lists_the_bad_records_and_trains_on(tmp_path):
    recs = {k: record(jpeg(k), float(k % 2)) for k in range(1, 6)} | {2: record(b"junk", 0.0)}
    root = write_pack(tmp_path / "t", recs)
    rec = root / "train.rec"
    offsets = [int(line.split()[1]) for line in (root / "train.idx").read_text().splitlines()]
    rec.write_bytes(rec.read_bytes()[: offsets[3] + 40])  # key 4 cut inside its image, key 5 gone
    data = RecFaces(root, (20, 16))
    assert data.bad_at_index == [("train.rec:5", f"offset {offsets[4]} is past the end of the file (truncated file?)")]
    run = tmp_path / "run"
    data.write_report(run)
    image, label = data[3]  # key 4 cannot be read: the next readable sample (key 1) takes its place
    assert torch.equal(image, data[0][0]) and label == data[0][1]
    assert torch.equal(data[1][0], data[2][0])  # key 2 holds no image: key 3 takes its place
    listed = dict(line.split("\t") for line in (run / "bad_files.tsv").read_text().splitlines())
    assert set(listed) == {"train.rec:2", "train.rec:4", "train.rec:5"}
    assert listed["train.rec:2"] == "cannot identify image file train.rec:2"
    assert listed["train.rec:4"].endswith("are left in the file (truncated file?)")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("rec") / "tree", {"ann": 3, "bob": 5, "cy": 4}, size=(40, 32))
    make_tree(root, {"cy": 1}, size=(30, 30), ext=".png", seed=5)
    (root / "bob" / "broken.jpg").write_text("not an image")  # copied as is, found when read
    (root / "ann" / "empty.jpg").write_bytes(b"")  # skipped and listed when converting
    return root


def test_rec_and_folder_give_the_same_samples_through_workers_pk_batches_and_ranks(tree, tmp_path):
    folder_to_rec(tree, tmp_path / "rec", progress=False)
    folder, rec = FaceFolder(tree, (28, 24), progress=False), RecFaces(tmp_path / "rec", (28, 24))
    assert rec.classes == folder.classes and rec.labels.tolist() == folder.labels.tolist() == [0, 0, 0] + [1] * 6 + [2] * 5
    for j in range(len(rec)):
        x, y = folder[j]
        assert torch.equal(rec[j][0], x) and rec[j][1] == y
    sampler = PKBatchSampler(rec.labels, 6, 3, seed=1)
    batch = next(iter(sampler))  # P x K batches are a function of (seed, iteration): the loader sees this one first
    images, labels = next(iter(torch.utils.data.DataLoader(rec, batch_sampler=sampler, num_workers=2)))
    assert labels.tolist() == [folder.labels[i] for i in batch] and len(set(labels.tolist())) == 2
    assert torch.equal(images, torch.stack([folder[i][0] for i in batch]))
    shares = [next(iter(torch.utils.data.DataLoader(rec, batch_sampler=RankShare(sampler, r, 2)))) for r in (0, 1)]
    assert torch.equal(torch.cat([images for images, _ in shares]), images)  # two ranks: the global batch, split
    assert RecFaces(tmp_path / "rec", (28, 24), min_images=5).classes == ["bob", "cy"]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_convert_round_trip_through_the_data_action(tree, tmp_path):
    def convert(src, out, *more):
        cfg = compose_config("data", ["action=convert", f"convert.src={src}", f"convert.out={out}",
                                      "convert.progress=false", *more])
        return instantiate(cfg.actions[cfg.action])(cfg)

    convert(tree, tmp_path / "rec")
    assert (tmp_path / "rec" / "property").read_text() == "3,40,32\n"
    assert (tmp_path / "rec" / "bad_files.tsv").read_text() == "ann/empty.jpg\tempty file (0 bytes)\n"
    convert(tmp_path / "rec", tmp_path / "back")
    original = {k: v for k, v in _files(tree).items() if k != "ann/empty.jpg"}
    assert _files(tmp_path / "back") == original
    with pytest.raises(FacetrainError, match="exists; pass convert.overwrite=true"):
        convert(tree, tmp_path / "rec")
    (tmp_path / "junk" / "a").mkdir(parents=True)
    (tmp_path / "junk" / "a" / "x.jpg").write_text("not an image")
    with pytest.raises(FacetrainError, match="no readable image under .*junk"):  # a traceback, the old pack deleted
        convert(tmp_path / "junk", tmp_path / "rec", "convert.overwrite=true")
    assert (tmp_path / "rec" / "property").read_text() == "3,40,32\n"
    with pytest.raises(FacetrainError, match="neither an insightface pack"):
        convert(tmp_path / "rec" / "property", tmp_path / "x")
    cfg = compose_config("data", ["action=convert", f"convert.src={tmp_path / 'back'}", f"convert.out={tmp_path}",
                                  "convert.overwrite=true", "convert.progress=false"])
    with pytest.raises(FacetrainError, match="convert.out=.* holds convert.src=.* would delete the input"):
        instantiate(cfg.actions[cfg.action])(cfg)  # it removed the input, then failed reading it
    assert _files(tmp_path / "back") == original


def test_a_zoo_pack_becomes_identity_folders(tmp_path):
    root = header_pack(tmp_path / "zoo", [0, 1, 1])
    recs = {0: record(jpeg(0), 0.0), 1: record(jpeg(1, fmt="PNG"), 1.0), 2: record(b"\x00\x01junk", 1.0)}
    write_pack(tmp_path / "flat", recs)
    summary = rec_to_folder(root, tmp_path / "out", progress=False)
    assert summary["images"] == 3 and _files(tmp_path / "out") == {"0/1.jpg": jpeg(0), "1/2.jpg": jpeg(1),
                                                                  "1/3.jpg": jpeg(2)}
    summary = rec_to_folder(tmp_path / "flat", tmp_path / "out2", progress=False)
    assert set(_files(tmp_path / "out2")) == {"0/0.jpg", "1/1.png", "bad_files.tsv"}
    assert summary["skipped"] == [("train.rec:2", "not a known image format (starts with 00016a756e6b)")]


def test_refusals_are_one_line(tmp_path):
    def refused(root, match):
        with pytest.raises(FacetrainError, match=match) as err:
            RecFaces(root)
        assert "\n" not in str(err.value)

    refused(tmp_path / "nowhere", "does not exist; point data.root=")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "has no train.rec")
    root = write_pack(tmp_path / "p", {1: record(jpeg(1), 0.0), 2: record(jpeg(2), 3.0)})
    (root / "property").write_text("2,20,16\n")
    refused(root, "a record has label 3 but .*property says 2 classes")
    (root / "property").write_text("many\n")
    refused(root, "is not `classes,height,width`")
    (root / "property").unlink()
    (root / "train.idx").write_text("1\t0\n2\tx\n")
    refused(root, "train.idx line 2: '2\\\\tx' is not `key<TAB>offset`")
    (root / "train.idx").unlink()
    refused(root, "has no index train.idx")
    broken = write_pack(tmp_path / "b", {0: record(b"", (3.0, 4.0)), 1: record(jpeg(1), 0.0)})
    (broken / "train.rec").write_bytes(b"\0" * 8 + (broken / "train.rec").read_bytes()[8:])
    refused(broken, "record 0 cannot be read \\(no RecordIO magic word at byte 0 of the record")


@pytest.mark.parametrize("via", ["python", "cli"])
def test_train_on_a_rec_pack(via, tiny_data, tmp_path, train_cfg):
    folder_to_rec(tiny_data / "synth" / "casia", tmp_path / "rec", progress=False)
    run, data = tmp_path / "run", ["data=rec", f"data.root={tmp_path / 'rec'}", "iterations=2"]
    if via == "cli":  # as a user types it
        run_cli("train", *tiny_train_overrides(tiny_data, run), *data, cwd=tmp_path)
    else:
        assert train(train_cfg(*data, "data.num_workers=auto", run_dir=run))["train/iterations"] == 2
    assert (run / "checkpoints" / "last.pt").exists()
    assert '"identities": 6' in (run / "data_report.json").read_text()


def test_synth_writes_the_zoo_layout(tmp_path):
    from facetrain.data.synth.command import synth
    from facetrain.eval.protocols.bin import read_bin
    from facetrain.eval.protocols.lfw import parse_lfw_pairs

    cfg = compose_config("data", [f"synth.out={tmp_path}", "synth.train_identities=3", "synth.train_min_images=2",
                                  "synth.train_max_images=3", "synth.lfw_pairs_per_fold=1",
                                  "synth.lfw_identities_per_fold=2", "synth.lfw_max_images=3", "synth.blufr_trials=0",
                                  "synth.ytf_splits=0", "synth.ijba_splits=0", "synth.ijbc_subjects=0",
                                  "synth.workers=1", "synth.insightface_pairs_per_fold=1", "synth.rfw_pairs_per_fold=1",
                                  "synth.rfw_identities_per_fold=2", "synth.rfw_max_images=2"])
    synth(cfg)
    zoo = tmp_path / "faces_synth"
    data, folder = RecFaces(zoo, (112, 96)), FaceFolder(tmp_path / "casia", (112, 96), progress=False)
    assert data.classes == folder.classes and torch.equal(data[len(data) - 1][0], folder[len(folder) - 1][0])
    pairs, bins = parse_lfw_pairs(tmp_path / "lfw" / "pairs.txt"), read_bin(zoo / "lfw.bin")
    assert bins.same.tolist() == pairs.same.tolist() and len(bins.images) == 2 * len(pairs) == 40
    assert bins.images[1] == (tmp_path / "lfw" / pairs.right[0]).read_bytes()
    shutil.rmtree(zoo)
    synth(cfg)  # the other trees are kept; the zoo layout is written again
    assert (zoo / "train.rec").exists()
