"""IdentityDataset: labeled face images with identity selection, a data report and bad-file replacement.

The shared part of the folder and pack datasets: subclasses say where sample j's pixels come from
(`_load`) and what it is called (`_name`); this class chooses the identities (subset, evaluation-set
exclusion), reports counts, and replaces a sample that fails to decode by the next readable one.
"""

from __future__ import annotations

import abc
import json
import logging
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from facetrain.data.images.image_io import ImageReadError
from facetrain.data.images.jpeg_decoder import is_jpeg, jpeg_components
from facetrain.data.labelled import LabelledDataset
from facetrain.data.selection.bad_files import BAD_FILES_NAME, BadFileLog
from facetrain.data.selection.exclude_list import read_exclude_lists
from facetrain.data.selection.exclusion import overlapping_identities, read_identity_names
from facetrain.data.selection.subset import count_images, read_identity_list, select_identities
from facetrain.errors import FacetrainError

__all__ = ["IdentityDataset"]

log = logging.getLogger(__name__)

REPORT_NAME = "data_report.json"
IDENTITIES_NAME = "identities.txt"


def _as_list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class IdentityDataset(LabelledDataset, abc.ABC):
    """Base of FaceFolder and PackedFaces: (uint8 [C, H, W] tensor, label) per index.

    Args:
        min_images: keep identities with at least this many images.
        max_identities: then keep at most this many identities (None: all), picked by `subset_order`.
        max_images: keep at most this many images per identity, the first ones by path (None: all).
        keep_identities: a text file of identity folder names to restrict to (None: all).
        subset_order: `most_images`, `name` or `random` (see `select_identities`).
        subset_seed: the seed of `random`.
        exclude_identities_of: evaluation sets whose people are removed: a known name (`lfw`), a
            folder of people or a names file, or a list of those.
        eval_sets: known evaluation-set names → their folder or names file.
        identity_names: a `folder name` file for trees whose folders are ids (CASIA, MS-Celeb-1M).
        exclude: exclusion lists (`facetrain data audit`'s exclude.tsv): images and identities to leave out,
            before `min_images` and the other selection steps count.
    """

    def __init__(self, min_images: int = 1, max_identities: int | None = None, keep_identities: str | None = None,
                 subset_order: str = "most_images", subset_seed: int = 0, exclude_identities_of=None,
                 eval_sets: dict | None = None, identity_names: str | None = None, max_images: int | None = None,
                 exclude=None):
        self.selection_args = dict(min_images=int(min_images), max_identities=max_identities,
                                   keep=read_identity_list(keep_identities) if keep_identities else None,
                                   order=subset_order, seed=int(subset_seed))
        self.exclude_sources = _as_list(exclude_identities_of)
        self.eval_sets = dict(eval_sets or {})
        self.identity_names = identity_names
        self.max_images = None if max_images is None else int(max_images)
        self.exclude = read_exclude_lists(None if exclude is None else _as_list(exclude))
        self.bad_at_index: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self._bad_log = BadFileLog()
        self._report: dict = {}
        self.encoded = False  # data.decode=cuda: items are JPEG bytes for the GPU (see `_fetch`)

    # -- subclasses implement these -------------------------------------------------------------
    @abc.abstractmethod
    def _load(self, j: int) -> torch.Tensor:
        """The uint8 image of sample j at the configured size; raises ImageReadError when unreadable."""

    @abc.abstractmethod
    def _name(self, j: int) -> str:
        """Sample j's path relative to the root (for logs and bad_files.tsv)."""

    def _encoded(self, j: int) -> bytes | None:
        """Sample j's encoded file bytes (None: the format holds decoded pixels); raises ImageReadError."""
        return None

    def _fetch(self, j: int) -> torch.Tensor:
        """`_load`; with `encoded`, a colour or gray JPEG that looks whole (ends with its EOI marker) comes
        as its bytes, a 1-D uint8 tensor, for `device_decode` to decode on the GPU."""
        if self.encoded:
            data = self._encoded(j)
            if data is not None and is_jpeg(data) and jpeg_components(data) in (1, 3) and \
                    data.rstrip(b"\x00").endswith(b"\xff\xd9"):
                return torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return self._load(j)

    # -- selection -------------------------------------------------------------------------------
    def _select(self, labels: Sequence[int], classes: Sequence[str],
                names: Callable[[], Sequence[str]] | None = None) -> np.ndarray:
        """Choose identities; set `self.labels`, `self.classes`; return the kept sample positions.

        `names()` (each sample's `_name`, asked for only when an exclusion list names images) is what the
        list's images are matched against.
        """
        labels = np.asarray(labels, dtype=np.int64)
        listed = self._excluded_samples(labels, classes, names)
        counts = count_images(labels[~listed].tolist(), classes)
        excluded: list[str] = []
        if self.exclude_sources:
            names = read_identity_names(self.identity_names) if self.identity_names else None
            excluded = overlapping_identities(classes, self.exclude_sources, self.eval_sets, names)
            for name in excluded:
                counts.pop(name)
        chosen, report = select_identities(counts, **self.selection_args)
        if not chosen:
            raise FacetrainError(f"no identity is left after selection ({report}); lower data.min_images or "
                                 "check data.keep_identities")
        new_label = np.full(len(classes), -1, dtype=np.int64)
        position = {name: i for i, name in enumerate(classes)}
        for new, name in enumerate(chosen):
            new_label[position[name]] = new
        mapped = new_label[labels]
        keep = np.flatnonzero((mapped >= 0) & ~listed)
        if self.max_images is not None:  # samples are sorted by path within an identity: keep the first ones
            order = np.argsort(mapped[keep], kind="stable")
            rank = np.empty(len(keep), dtype=np.int64)
            starts = np.searchsorted(mapped[keep][order], mapped[keep][order], side="left")
            rank[order] = np.arange(len(keep)) - starts
            report["removed_by_max_images"] = int((rank >= self.max_images).sum())
            keep = keep[rank < self.max_images]
        self.labels = mapped[keep]
        self.classes = list(chosen)
        # identities_before counts the set as found, before the evaluation-set exclusion took any
        self._report = report | {"identities_before": len(classes), "excluded_identities": len(excluded),
                                 "excluded": excluded, "excluded_from": self.exclude_sources,
                                 "removed_by_exclude_list": int(listed.sum())}
        if excluded:
            log.info("removed %d training identities that appear in %s", len(excluded), ", ".join(self.exclude_sources))
        return keep

    def _excluded_samples(self, labels: np.ndarray, classes: Sequence[str],
                          names: Callable[[], Sequence[str]] | None) -> np.ndarray:
        """A mask of the samples the exclusion lists name (by their own name or their identity's)."""
        listed = np.zeros(len(labels), dtype=bool)
        if not self.exclude:
            return listed
        gone = np.array([c in self.exclude.identities for c in classes], dtype=bool)
        listed |= gone[labels]
        found = {f"{c}/" for c in np.asarray(classes, dtype=object)[gone]}
        if self.exclude.images and names is not None:
            sample_names = [str(n) for n in names()]
            hits = self.exclude.images.intersection(sample_names)
            listed |= np.array([n in hits for n in sample_names], dtype=bool)
            found |= hits
        self._check_exclude_matches(found)
        log.info("exclusion list: leaving out %d images (%d identities listed whole)", int(listed.sum()),
                 int(gone.sum()))
        return listed

    def _check_exclude_matches(self, found: set[str]) -> None:
        """A list none of whose entries is in this data was written for other data (or names absolute paths):
        refuse it rather than train on everything; a list partly out of date is worth a warning."""
        entries = sorted(self.exclude.images | {f"{c}/" for c in self.exclude.identities})
        missing = [e for e in entries if e not in found]
        if missing and not found:
            raise FacetrainError(f"data.exclude: none of its {len(entries)} entries names an image or identity of "
                                 f"{getattr(self, 'root', 'this data')} (first: {missing[0]!r}); give the list "
                                 "`facetrain data audit` wrote for this data.root (paths relative to it, identities "
                                 "as NAME/)")
        if missing:
            log.warning("exclusion list: %d of its %d entries name nothing in this data (first: %r)", len(missing),
                        len(entries), missing[0])

    # -- dataset protocol --------------------------------------------------------------------------
    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]:
        """Sample i, or — when its file cannot be decoded — the next readable sample (i+1, i+2, ...).

        The replacement depends only on i and the tree, so the fixed index stream of the
        iteration sampler still gives the same batches after a resume. With `encoded`, the sample's
        position comes third, so a JPEG the GPU refuses can be decoded (or replaced) here after all.
        """
        n = len(self)
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            try:
                image = self._fetch(j)
                return (image, int(self.labels[j]), j) if self.encoded else (image, int(self.labels[j]))
            except ImageReadError as err:
                self._bad.add(j)
                reason = str(err)
                reason = reason[reason.find("(") + 1 : reason.rfind(")")] if "(" in reason else reason
                log.warning("skipping unreadable image %s (%s); using the next one", self._name(j), reason)
                self._bad_log.write([(self._name(j), reason)])
        raise FacetrainError("none of the training images can be read; check data.root")

    def decoded_item(self, j: int) -> tuple[torch.Tensor, int]:
        """Sample j (or its replacement) decoded here on the CPU, whatever `encoded` says."""
        encoded, self.encoded = self.encoded, False
        try:
            return self[j]
        finally:
            self.encoded = encoded

    # -- report ------------------------------------------------------------------------------------
    def report(self) -> dict:
        """Counts for the run directory: identities, images, images per identity, what was removed."""
        per_identity = np.bincount(self.labels, minlength=self.num_classes).tolist()
        return {
            "root": str(getattr(self, "root", "")),
            "identities": self.num_classes,
            "images": len(self),
            "images_per_identity": {"min": min(per_identity), "median": float(statistics.median(per_identity)),
                                    "max": max(per_identity)},
            "selection": self._report,
            "bad_files_at_index": len(self.bad_at_index),
        }

    def write_report(self, run_dir: str | Path) -> dict:
        """Write data_report.json, identities.txt (label order) and bad_files.tsv into `run_dir`.

        Files found broken later, while training, are appended to bad_files.tsv by whichever
        loader process meets them.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        report = self.report()
        (run_dir / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        (run_dir / IDENTITIES_NAME).write_text("".join(f"{c}\n" for c in self.classes))
        self._bad_log = BadFileLog(run_dir / BAD_FILES_NAME)
        known = dict(self._bad_log.read())  # a resumed run keeps what its first part found
        known |= dict(self.bad_at_index)
        self._bad_log.path.write_text("".join(f"{p}\t{r}\n" for p, r in sorted(known.items())))
        pi = report["images_per_identity"]
        log.info("training data: %d images of %d identities (per identity min %d / median %g / max %d); "
                 "%d identities excluded, %d bad files skipped (list: %s)", report["images"], report["identities"],
                 pi["min"], pi["median"], pi["max"], self._report.get("excluded_identities", 0),
                 len(self.bad_at_index), self._bad_log.path)
        return report
