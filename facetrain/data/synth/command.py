"""`facetrain data synth`: write the synthetic trees (CASIA-style training, LFW, BLUFR, YTF, IJB-A, IJB-C, RecordIO + the
five .bin sets, RFW)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from facetrain.config import abs_path, check_count
from facetrain.data.synth.faults import FaultSpec
from facetrain.data.synth.trees import SynthSpec, write_synthetic_data
from facetrain.errors import FacetrainError

__all__ = ["ensure_synthetic", "synth"]


_AT_LEAST = {"seed": 0, "train_identities": 1, "train_min_images": 1, "lfw_folds": 1, "lfw_pairs_per_fold": 1,
             "lfw_identities_per_fold": 2, "lfw_max_images": 2, "jpeg_quality": 1, "workers": 0,
             "ytf_max_videos": 2, "rfw_max_images": 2}  # others: 0 (a person has 2 to *_max images or videos)


def _check_settings(s: DictConfig) -> None:
    """Every count an integer in range before anything is written (a bad one failed mid-way, trees half done)."""
    size = list(s.image_size) if OmegaConf.is_list(s.image_size) else [s.image_size]
    if len(size) != 2:
        raise FacetrainError(f"synth.image_size={size} must be [height, width] in pixels")
    counts = {k: v for k, v in s.items() if k not in ("out", "image_size", "insightface", "overwrite", "faults")}
    counts |= {f"faults.{k}": v for k, v in (s.get("faults") or {}).items()}
    counts |= {"image_size[0]": size[0], "image_size[1]": size[1]}
    for key, value in counts.items():
        check_count(f"synth.{key}", value, _AT_LEAST.get(key, 1 if key.startswith("image_size") else 0),
                    "configs/synth/default.yaml says what each key means")
    if s.jpeg_quality > 100:
        raise FacetrainError(f"synth.jpeg_quality={s.jpeg_quality} must be at most 100")
    if s.train_max_images < s.train_min_images:
        raise FacetrainError(f"synth.train_max_images={s.train_max_images} must be >= synth.train_min_images="
                             f"{s.train_min_images}")


def synth(cfg: DictConfig) -> dict:
    s = cfg.synth
    _check_settings(s)
    spec = SynthSpec(
        seed=int(s.seed), image_size=(int(s.image_size[0]), int(s.image_size[1])),
        train_identities=int(s.train_identities), train_min_images=int(s.train_min_images),
        train_max_images=int(s.train_max_images), lfw_folds=int(s.lfw_folds),
        lfw_pairs_per_fold=int(s.lfw_pairs_per_fold), lfw_identities_per_fold=int(s.lfw_identities_per_fold),
        lfw_max_images=int(s.lfw_max_images), jpeg_quality=int(s.jpeg_quality),
        **{k: int(v) for k, v in s.items() if k.startswith(("blufr_", "ytf_", "ijba_", "ijbc_", "rfw_"))},  # optional trees
        insightface=bool(s.get("insightface", False)),
        insightface_pairs_per_fold=int(s.get("insightface_pairs_per_fold", 0)),
        faults=FaultSpec(**{k: int(v) for k, v in (s.get("faults") or {}).items()}),
    )
    out = abs_path(s.out)
    summary = write_synthetic_data(out, spec, workers=int(s.workers), overwrite=bool(s.overwrite))
    state = "already there" if summary.get("reused") else "written"
    print(f"synthetic data {state}: {out}/casia ({summary['train_images']} images of "
          f"{summary['train_identities']} people), {out}/lfw ({summary['lfw_images']} images, "
          f"{summary['lfw_pairs']} pairs in pairs.txt)")
    if summary.get("faults"):
        print(f"  faults planted in {out}/casia (ground truth: {out}/faults/casia.tsv): " +
              ", ".join(f"{n} {kind}" for kind, n in summary["faults"].items()))
    for tree, key, what in (("blufr_lfw", "blufr_trials", "trials"), ("ytf", "ytf_pairs", "video pairs"),
                            ("ijba", "ijba_pairs", "1:1 pairs"), ("ijbc", "ijbc_pairs", "1:1 pairs")):
        if key in summary:
            print(f"  {out}/{tree} ({summary[key]} {what})")
    if "insightface_images" in summary:
        others = "".join(f", {k[:-len('_pairs')]}.bin" for k in summary if k.endswith("_pairs") and
                         k[:-len("_pairs")] in ("cfp_fp", "agedb_30", "calfw", "cplfw"))
        print(f"  {out}/faces_synth (insightface's layout: train.rec/.idx/property with {summary['insightface_images']}"
              f" images for data=rec, lfw.bin with {summary['insightface_pairs']} pairs{others} for `facetrain eval bin`)")
    if "rfw_pairs" in summary:
        print(f"  {out}/rfw (RFW's layout: data/<Group>/, txts/<Group>/<Group>_pairs.txt, {summary['rfw_pairs']} pairs "
              "per group for `facetrain eval rfw`)")
    return summary


def ensure_synthetic(data: DictConfig) -> None:
    """Write the default synthetic trees when `data.root` (their training tree) is missing: the first
    `facetrain train` on a fresh clone works without a separate `facetrain data synth`."""
    root = abs_path(data.root)
    if root.is_dir() or root != abs_path(data.synth.out) / "casia":  # another folder: the loader's clear error
        return
    print(f"facetrain: the synthetic training data {root} is missing; writing it now (once; what "
          "`facetrain data synth` writes)", flush=True)
    synth(data)
