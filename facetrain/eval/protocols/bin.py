"""`facetrain eval bin`: insightface's `.bin` validation sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, VGG2-FP).

Each file's pairs are scored as insightface's verification does: flip-augmented embeddings, 10 folds of
consecutive pairs in file order, the best threshold of 9 folds applied to the 10th — by default exactly
insightface's rule (squared distance on a 0.01 grid, `metrics/grid_accuracy.py`), or facetrain's exhaustive
search (`protocol.threshold_search=exhaustive`). `five` names the field's five-set benchmark (LFW, CFP-FP,
AgeDB-30, CALFW, CPLFW; CFP-FF and VGG2-FP too when present): their accuracies and their mean print as one row.

The sets are read with a restricted unpickler.

A `.bin` file is a pickle of `(bins, issame)`: 2P encoded images (JPEG/PNG bytes; images 2i and 2i+1 form
pair i) and P booleans, written by Python 2 (`str` images, read as bytes) or Python 3, `issame` a list or
a numpy bool array. A pickle can name any Python callable; this reader admits only the few globals such
a file needs, so a data file never runs code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.eval.features.checks import check_features
from facetrain.eval.features.embedder import embed_encoded
from facetrain.eval.features.file import Features, load_features, save_features
from facetrain.eval.features.source import ProtocolFeatures
from facetrain.eval.metrics.grid_accuracy import grid_kfold_accuracy, squared_distances
from facetrain.eval.metrics.pair_scoring import pair_scores
from facetrain.eval.metrics.roc import eer, roc_auc
from facetrain.eval.metrics.verification import kfold_accuracy
from facetrain.eval.plots import roc_from_scores
from facetrain.eval.publish import publish
from facetrain.eval.tables import format_table, pct
from facetrain.models.trained_run import load_embedder
from facetrain.run.checkpoint import resolve_checkpoint, run_of_checkpoint
from facetrain.run.device import pick_device

__all__ = ["EXTRA_SETS", "FIVE", "FIVE_MEAN", "FIVE_SETS", "FOLDS", "THRESHOLD_SEARCHES", "BinPairs", "bin_folds", "bin_metrics",
           "bin_paths", "evaluate_bin", "five_row", "read_bin", "read_sets", "sets_metrics"]


def _latin1(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes under protocol 2, and nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode(..., {encoding!r}) is not how bytes are pickled")
    return text.encode("latin1")


def _empty_bytes(*args) -> bytes:
    """`bytes()` as Python 3 pickles b'' under protocol 2, and nothing else."""
    if args:
        raise pickle.UnpicklingError("bytes(...) with arguments is not how bytes are pickled")
    return b""


_RECONSTRUCT = np.array([True]).__reduce__()[0]  # numpy.core / numpy._core .multiarray._reconstruct
_SCALAR = np.bool_(True).__reduce__()[0]  # numpy.core / numpy._core .multiarray.scalar (a list of numpy bools)
_ALLOWED = {
    ("_codecs", "encode"): _latin1,  # Python 3 bytes under protocol 2
    **{(m, "bytes"): _empty_bytes for m in ("builtins", "__builtin__")},  # b'' under protocol 2
    **{(f"numpy.{core}.multiarray", name): fn for core in ("core", "_core")
       for name, fn in (("_reconstruct", _RECONSTRUCT), ("scalar", _SCALAR))},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                  UnicodeError, OverflowError, MemoryError, RecursionError)


@dataclass(frozen=True)
class BinPairs:
    """One validation set: encoded images in file order and a label per consecutive pair."""

    path: Path
    images: list[bytes]  # [2P] encoded images
    same: np.ndarray  # bool [P]

    def __len__(self) -> int:
        return len(self.same)

    @property
    def name(self) -> str:
        """The file's stem (lfw, cfp_fp, agedb_30, ...): the metrics' key."""
        return self.path.stem


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")  # Python 2 `str` images come back as bytes, as insightface reads them
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FacetrainError(f"{self.path}: refuses to load {module}.{name} from this pickle; a .bin validation "
                                 "file holds only images and labels — is it the file you meant?") from None

    def persistent_load(self, pid):
        raise FacetrainError(f"{self.path}: refuses a persistent reference in this pickle; a .bin validation file "
                             "holds only images and labels — is it the file you meant?")


def _labels(path: Path, issame) -> np.ndarray:
    if isinstance(issame, np.ndarray):
        if issame.ndim != 1 or issame.dtype != bool:
            raise FacetrainError(f"{path}: issame is an array of {issame.dtype} with shape {issame.shape}; "
                                 "a .bin validation file has one boolean per pair")
        return issame.copy()
    if not isinstance(issame, list | tuple):
        raise FacetrainError(f"{path}: issame is a {type(issame).__name__}; a .bin validation file has a list of "
                             "booleans, one per pair")
    for i, value in enumerate(issame):
        if not isinstance(value, bool | np.bool_):
            raise FacetrainError(f"{path}: issame[{i}] is {value!r}, not a boolean; a .bin validation file has one "
                                 "boolean per pair")
    return np.array(issame, dtype=bool)


def _check(path: Path, data) -> BinPairs:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise FacetrainError(f"{path}: holds a {type(data).__name__}, not the (images, issame) pair insightface "
                             "writes; is it a .bin validation file?")
    bins, issame = data
    if not isinstance(bins, list | tuple):
        raise FacetrainError(f"{path}: the images are a {type(bins).__name__}, not a list of encoded images")
    for i, image in enumerate(bins):
        if not isinstance(image, bytes | bytearray):
            raise FacetrainError(f"{path}: image {i} is a {type(image).__name__}, not encoded image bytes")
    same = _labels(path, issame)
    if len(bins) % 2:
        raise FacetrainError(f"{path}: {len(bins)} images is an odd number; images 2i and 2i+1 form pair i, so "
                             "the file is damaged or not a .bin validation set")
    if len(bins) // 2 != len(same):
        raise FacetrainError(f"{path}: {len(bins)} images make {len(bins) // 2} pairs but issame has {len(same)} "
                             "labels; the file is damaged or not a .bin validation set")
    return BinPairs(path, [bytes(b) for b in bins], same)


def read_bin(path: Path) -> BinPairs:
    """Load and check one `.bin` file without running anything it names.

    Raises:
        FacetrainError: (one line naming the file) it is missing, not a complete pickle, names a global
            other than the few a `.bin` needs, or does not hold 2P images and P booleans.
    """
    if not path.is_file():
        raise FacetrainError(f"{path} does not exist; pass insightface .bin validation files, e.g. "
                             "protocol.paths=[/data/lfw.bin,/data/cfp_fp.bin]")
    try:
        with path.open("rb") as f:
            data = _DataOnlyUnpickler(f, path).load()
    except _PICKLE_ERRORS as err:
        reason = str(err) or type(err).__name__
        raise FacetrainError(f"{path}: cannot be read as a pickle ({reason}); a .bin validation file is insightface's "
                             "pickle of (images, issame) — is it the file you meant, fully downloaded?") from None
    return _check(path, data)


log = logging.getLogger(__name__)

FOLDS = 10
_EXAMPLE = "protocol.paths=[/data/lfw.bin,/data/cfp_fp.bin]"
FIVE = "five"  # the preset's name in protocol.paths / val.sets
FIVE_SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")  # the five-set benchmark, in the order papers print it
EXTRA_SETS = ("cfp_ff", "vgg2_fp")  # scored with the five when their files are there; not in the mean
FIVE_MEAN = "five_mean"  # bin/five_mean/acc_mean: the mean of the five sets' acc_mean
THRESHOLD_SEARCHES = ("insightface", "exhaustive")


def bin_folds(pairs: int, folds: int = FOLDS) -> np.ndarray:
    """Fold of each pair: `folds` runs of consecutive pairs (pair * folds // pairs when `folds` divides `pairs`).

    When it does not, the first `pairs % folds` folds take one pair more, as scikit-learn's unshuffled
    KFold (insightface's split) does.
    """
    sizes = np.full(folds, pairs // folds)
    sizes[: pairs % folds] += 1
    return np.repeat(np.arange(folds), sizes)


def bin_metrics(name: str, same: np.ndarray, left: np.ndarray, right: np.ndarray,
                threshold_search: str = "insightface") -> tuple[dict[str, float], np.ndarray]:
    """`bin/<name>/...` numbers of one set from the features of its pairs' two sides; also the cosine scores.

    `threshold_search`: `insightface` (its verification.py rule, the default) or `exhaustive` (every
    operating point, as LFW). `threshold_mean` is a cosine either way (a squared distance d is 1 - d/2).
    """
    if threshold_search not in THRESHOLD_SEARCHES:
        raise FacetrainError(f"threshold_search={threshold_search!r} is not one of {', '.join(THRESHOLD_SEARCHES)}")
    scores = pair_scores(left, right, "cosine")
    if threshold_search == "insightface":
        result = grid_kfold_accuracy(squared_distances(left, right), same, bin_folds(len(same)))
        cosine_thresholds = 1 - result.thresholds / 2
    else:
        result = kfold_accuracy(scores, same, bin_folds(len(same)))
        cosine_thresholds = result.thresholds
    key = f"bin/{name}"
    return {f"{key}/acc_mean": result.mean, f"{key}/acc_std": result.std,
            f"{key}/threshold_mean": float(cosine_thresholds.mean()), f"{key}/auc": roc_auc(same, scores),
            f"{key}/eer": eer(same, scores), f"{key}/pairs": float(len(same))}, scores


def _named(item: str) -> bool:
    """A bare set name (`cfp_fp`), looked up as `<root>/cfp_fp.bin`, rather than a path."""
    return "/" not in item and not item.endswith(".bin")


def _expand(items: list[str], root: Path | None, option: str) -> list[str]:
    """`five` -> the five sets (+ CFP-FF, VGG2-FP when present in root); names stay names."""
    out = []
    for item in items:
        if item != FIVE:
            out.append(item)
            continue
        if root is None:
            raise FacetrainError(f"{option}: `{FIVE}` names files in a folder, but no folder is set; "
                                 "give it as data.root=/data/faces_emore (eval) or val.bin_root=... (train)")
        missing = [n for n in FIVE_SETS if not (root / f"{n}.bin").is_file()]
        if missing:
            raise FacetrainError(f"{option}: `{FIVE}` needs {', '.join(f'{n}.bin' for n in FIVE_SETS)} in {root}, "
                                 f"which lacks {', '.join(f'{n}.bin' for n in missing)}; point the folder at "
                                 "insightface's validation sets (`facetrain data synth` writes synthetic "
                                 "stand-ins) or list the files you have: " + _EXAMPLE.replace("protocol.paths", option))
        out += [*FIVE_SETS, *(n for n in EXTRA_SETS if (root / f"{n}.bin").is_file())]
    return out


def bin_paths(given, option: str = "protocol.paths", root: Path | None = None) -> list[Path]:
    """The `.bin` files of an option (one path or a list), each with its own file name (metrics are keyed by it).

    An item is a path, a bare set name (`cfp_fp` -> `<root>/cfp_fp.bin`) or `five` (the five-set benchmark).
    """
    items = [given] if isinstance(given, str) else list(given or [])
    if not items:
        example = _EXAMPLE.replace("protocol.paths", option)
        raise FacetrainError(f"no .bin files given; pass them as {example} (one file: {option}=/data/lfw.bin, "
                             f"the five-set benchmark: {option}={FIVE})")
    items = _expand([str(i) for i in items], root, option)
    if root is None and any(_named(i) for i in items):
        raise FacetrainError(f"{option}: set names need a folder to look them up in; give full paths "
                             "(/data/lfw.bin) or the folder (data.root=... for eval, val.bin_root=... for train)")
    paths = [root / f"{i}.bin" if _named(i) else abs_path(i) for i in items]
    stems = [p.stem for p in paths]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise FacetrainError(f"two .bin files are named {twice[0]} ({option}); metrics are keyed bin/<file name>, "
                             "so give each set its own file name")
    if FIVE_MEAN in stems:
        raise FacetrainError(f"{option}: a set may not be named {FIVE_MEAN} (bin/{FIVE_MEAN}/... is the five-set "
                             "mean); rename the file")
    return paths


def read_sets(paths: Sequence[Path]) -> list[BinPairs]:
    """Each file read safely, refused in one line when it cannot give a 10-fold accuracy."""
    sets = [read_bin(p) for p in paths]
    for s in sets:
        if len(s) < FOLDS or s.same.all() or not s.same.any():
            raise FacetrainError(f"{s.path}: {len(s)} pairs ({int(s.same.sum())} matched); 10-fold accuracy needs "
                                 "at least 10 pairs, matched and mismatched")
    return sets


def _keys(sets: Sequence[BinPairs]) -> list[str]:
    """Feature names: `<set>/<image index in the file>`."""
    return [f"{s.name}/{i}" for s in sets for i in range(len(s.images))]


def _features(cfg: DictConfig, sets: Sequence[BinPairs]) -> ProtocolFeatures:
    """Every image of every set, from `cfg.features` or embedded with `cfg.model`; writes features_bin.npz."""
    keys = _keys(sets)
    if cfg.features:
        used = Features(load_features(abs_path(cfg.features)).select(keys, f"features file {cfg.features}"), keys)
        check_features(used, f"features file {cfg.features}",
                       "re-create it from a trained model (`facetrain eval bin model=RUN` writes features_bin.npz)")
        return ProtocolFeatures(used, [])
    checkpoint = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    trained = load_embedder(checkpoint, str(cfg.embedding))
    pre = trained.preprocessing  # decoded images are brought to the model's input size, fit and channels
    log.info("embedding %d images of %d .bin file(s) with %s", len(keys), len(sets), checkpoint)
    feats = embed_encoded(trained.embedder, [b for s in sets for b in s.images],
                          [f"{i} of {s.path}" for s in sets for i in range(len(s.images))],
                          pick_device(cfg.device), mirror=cfg.mirror, batch_size=cfg.batch_size,
                          num_workers=cfg.num_workers, progress=bool(cfg.progress), fit=pre.fit,
                          channels=pre.channels)
    check_features(Features(feats, keys), f"the features of {checkpoint}",
                   "the model has diverged or collapsed; retrain it or evaluate another checkpoint with model=...")
    save_features(abs_path(cfg.run_dir) / "features_bin.npz", feats, keys)
    return ProtocolFeatures(Features(feats, keys), [], run_of_checkpoint(checkpoint), trained.iteration, len(keys),
                            checkpoint)


def _table(names: Sequence[str], metrics: dict[str, float]) -> str:
    rows = [[n, int(metrics[f"bin/{n}/pairs"]), pct(metrics[f"bin/{n}/acc_mean"], metrics[f"bin/{n}/acc_std"]),
             pct(metrics[f"bin/{n}/auc"]), pct(metrics[f"bin/{n}/eer"])] for n in names]
    text = format_table(["set (.bin)", "pairs", "accuracy % (mean ± std, 10 folds)", "AUC %", "EER %"], rows)
    row = five_row(metrics)
    return text if row is None else text + "\n\n" + format_table(*row)


def five_row(metrics: dict[str, float], prefix: str = "bin") -> tuple[list[str], list[list[str]]] | None:
    """(headers, [row]): the five sets' accuracies, CFP-FF / VGG2-FP when scored, and the five-set mean; None
    without the mean. `prefix` is `bin` (eval) or `val/bin` (training's validation)."""
    if f"{prefix}/{FIVE_MEAN}/acc_mean" not in metrics:
        return None
    names = [*FIVE_SETS, *(n for n in EXTRA_SETS if f"{prefix}/{n}/acc_mean" in metrics)]
    return ([*(f"{n} %" for n in names), "mean of 5 %"],
            [[*(pct(metrics[f"{prefix}/{n}/acc_mean"]) for n in names), pct(metrics[f"{prefix}/{FIVE_MEAN}/acc_mean"])]])


def sets_metrics(sets: Sequence[BinPairs], features: np.ndarray, threshold_search: str = "insightface"
                 ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """`bin/<set>/...` numbers of every set from the features of all their images (in `_keys` order); also
    each set's pair scores. With all five sets of the benchmark, `bin/five_mean/acc_mean` is their mean."""
    metrics, scores, start = {}, {}, 0
    for s in sets:
        rows = features[start:start + len(s.images)]
        start += len(s.images)
        numbers, scores[s.name] = bin_metrics(s.name, s.same, rows[0::2], rows[1::2], threshold_search)
        metrics |= numbers
    if all(f"bin/{n}/acc_mean" in metrics for n in FIVE_SETS):
        metrics[f"bin/{FIVE_MEAN}/acc_mean"] = float(np.mean([metrics[f"bin/{n}/acc_mean"] for n in FIVE_SETS]))
    return metrics, scores


def evaluate_bin(cfg: DictConfig) -> dict[str, float]:
    """Score a model (or a features file) on each `.bin` of `protocol.paths` (set names and `five` are looked up
    in data.root); print the table (and the five-set row), write metrics.json."""
    root = abs_path(cfg.data.root) if cfg.data.get("root") else None
    sets = read_sets(bin_paths(cfg.protocol.paths, root=root))
    search = str(cfg.protocol.get("threshold_search", "insightface"))
    if search not in THRESHOLD_SEARCHES:  # before any embedding
        raise FacetrainError(f"protocol.threshold_search={search} is not one of {', '.join(THRESHOLD_SEARCHES)}")
    source = _features(cfg, sets)
    metrics, scores = sets_metrics(sets, source.features.features, search)
    curves = {s.name: roc_from_scores(s.same, scores[s.name]) for s in sets}
    return publish(cfg, "bin", metrics, _table([s.name for s in sets], metrics), curves, source,
                   calibration={f"bin/{s.name}": (s.same, scores[s.name]) for s in sets})
