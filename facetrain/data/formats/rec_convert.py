"""`facetrain data convert`: an insightface RecordIO pack -> a folder of identity folders, and back.

Images travel as their encoded bytes (never re-encoded), so folder -> rec -> folder gives the same files.
A written pack has insightface's layout (a header record 0, the images as keys 1..N, one record per
identity with its key range, `property`), so MXNet and insightface's loaders read it, plus im2rec's
`train.lst` (`key<TAB>label<TAB>path`), which keeps the folder and file names for the way back.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from facetrain.atomic import atomic_write, check_apart
from facetrain.config import abs_path
from facetrain.data.formats.file_index import scan_identity_folders
from facetrain.data.formats.rec_index import LIST_NAME, PROPERTY_NAME, load_rec_index, read_record
from facetrain.data.formats.recordio import RecordError, RecordWriter, pack_payload, unpack_payload
from facetrain.data.selection.bad_files import BAD_FILES_NAME
from facetrain.errors import FacetrainError

__all__ = ["convert", "folder_to_rec", "is_rec", "rec_to_folder"]

_SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"BM", ".bmp"), (b"GIF8", ".gif"),
               (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


def is_rec(path: Path) -> bool:
    """Whether `path` is a pack (a .rec file, or a folder holding train.rec)."""
    return (path.suffix == ".rec" and path.is_file()) or (path / "train.rec").is_file()


def _image_suffix(data: bytes) -> str | None:
    for signature, suffix in _SIGNATURES:
        if data.startswith(signature):
            return suffix
    return ".webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def _fresh(out: Path, overwrite: bool) -> None:
    """Refuse an existing `out` unless overwrite=true; atomic_write replaces it only once the new one is complete."""
    if out.exists() and not overwrite:
        raise FacetrainError(f"{out} exists; pass convert.overwrite=true to replace it or convert.out=... elsewhere")


def _list_skipped(out: Path, bad: list[tuple[str, str]]) -> None:
    if bad:
        (out / BAD_FILES_NAME).write_text("".join(f"{p}\t{r}\n" for p, r in sorted(bad)))


def folder_to_rec(src: Path, out: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Write every image of the tree `src` into the pack folder `out` (train.rec, train.idx, property, train.lst)."""
    tree = scan_identity_folders(src, progress=progress)
    _fresh(out, overwrite)
    atomic_write(out, lambda tmp: _write_rec(tmp, src, tree, progress))  # no half pack under the name
    _list_skipped(out, tree.bad)
    return {"images": len(tree.paths), "identities": len(tree.classes), "skipped": tree.bad}


def _write_rec(tmp: Path, src: Path, tree, progress: bool) -> None:
    tmp.mkdir(parents=True)
    n, classes = len(tree.paths), len(tree.classes)
    first = {}
    with RecordWriter(tmp / "train.rec", tmp / "train.idx") as writer, (tmp / LIST_NAME).open("w") as lst:
        writer.write(0, pack_payload(b"", (n + 1, n + 1 + classes)))  # images 1..n, then one record per identity
        for key, (rel, label) in enumerate(tqdm(list(zip(tree.paths, tree.labels, strict=True)), desc="write rec",
                                                unit="img", disable=not progress), 1):
            writer.write(key, pack_payload((src / rel).read_bytes(), float(label), id=key))
            lst.write(f"{key}\t{label}\t{rel}\n")
            first.setdefault(label, key)
        ends = [first[c + 1] if c + 1 < classes else n + 1 for c in range(classes)]
        for label in range(classes):
            writer.write(n + 1 + label, pack_payload(b"", (first[label], ends[label])))
    height, width = _first_size(src, tree.paths)  # insightface's `classes,height,width`
    (tmp / PROPERTY_NAME).write_text(f"{classes},{height},{width}\n")


def _first_size(src: Path, paths: list[str]) -> tuple[int, int]:
    """(height, width) of the first image that opens: the tree's files travel unchecked, as bytes."""
    for rel in paths:
        try:
            with Image.open(src / rel) as im:
                return im.height, im.width
        except OSError:  # PIL's UnidentifiedImageError among them
            continue
    raise FacetrainError(f"no readable image under {src}; nothing to convert")


def rec_to_folder(src: Path, out: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the pack `src`'s images as `out/<identity>/<file>`; unreadable records are skipped and listed.

    Identity folders are the zero-padded labels (or train.lst's names); files keep train.lst's names, or
    are named by key with the suffix of their format.
    """
    index = load_rec_index(src, progress=progress)
    _fresh(out, overwrite)
    bad = list(index.bad)
    atomic_write(out, lambda tmp: bad.extend(_write_folders(tmp, index, progress)))
    _list_skipped(out, bad)
    return {"images": len(index.keys) - (len(bad) - len(index.bad)), "identities": len(index.classes), "skipped": bad}


def _write_folders(tmp: Path, index, progress: bool) -> list[tuple[str, str]]:
    bad, width = [], len(str(int(index.keys.max())))
    fd = os.open(index.files.rec, os.O_RDONLY)
    try:
        for i in tqdm(range(len(index.keys)), desc="write folders", unit="img", disable=not progress):
            key = int(index.keys[i])
            try:
                image = unpack_payload(read_record(fd, int(index.offsets[i]), int(index.extents[i])))[1]
            except RecordError as err:
                bad.append((index.name(key), str(err)))
                continue
            if key in index.paths:  # the file's own name: bytes written back as they came
                name = Path(index.paths[key]).name
            elif (suffix := _image_suffix(image)) is not None:
                name = f"{key:0{width}d}{suffix}"
            else:
                bad.append((index.name(key), f"not a known image format (starts with {image[:8].hex()})"))
                continue
            folder = tmp / index.classes[int(index.labels[i])]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(image)
    finally:
        os.close(fd)
    return bad


def convert(cfg: DictConfig) -> dict:
    """The `convert` data action: the direction follows from what convert.src is."""
    c = cfg.convert
    src, out = abs_path(c.src), abs_path(c.out)
    check_apart(src, out, "convert")
    if is_rec(src):
        summary, what = rec_to_folder(src, out, bool(c.overwrite), bool(c.progress)), "identity folders"
    elif src.is_dir():
        summary, what = folder_to_rec(src, out, bool(c.overwrite), bool(c.progress)), "a RecordIO pack (data=rec)"
    else:
        raise FacetrainError(f"convert.src={src} is neither an insightface pack (a folder with train.rec and "
                             "train.idx) nor a folder of identity folders")
    skipped = summary["skipped"]
    print(f"converted {summary['images']} images of {summary['identities']} identities from {src} into {what} at "
          f"{out}; {len(skipped)} unreadable skipped" + (f" (listed in {out / BAD_FILES_NAME})" if skipped else ""))
    return summary
