"""Does fine-tuning a pretrained model on a small new population beat the alternatives? Measured on the synthetic twin.

    .venv/bin/python scripts/finetune_compare.py                  # ~10 min on 1 shared CPU core; prints the table
    .venv/bin/python scripts/finetune_compare.py --seeds 0 1 2 3 4 --ablations --set new_images=3

1. Pretrain (`loss=cosface`, small CNN at 56x48) on one synthetic population: many people (1,000, 10-20 images
   each), long enough to generalize: its accuracy on held-out people of its own population is reported.
   The run is cached in <out>/pretrain, so further seeds and methods reuse it.
2. A new population: other synthetic people (another synth seed), few of them (50) with few images each (5),
   seen through another camera: grey, lower contrast and a looser crop (the face at 80% of its aligned size),
   and LFW-style pairs (10 folds, people disjoint from the training people) for the comparison.
3. On the new population's pairs, compare
   - frozen:   the pretrained model as it is (deterministic: its 10-fold standard error);
   - scratch:  the same network trained on the small set alone, same iterations and schedule, at each of
               `scratch_lrs`; the best rate (mean over seeds) is reported as `scratch`;
   - finetune: `experiment=finetune_synth` from the pretrained run (its preset: classifier from class means,
               backbone lr x 0.1, BatchNorm adapting, warm-up); --ablations adds one preset key changed at a time.
Each trained method runs over --seeds; accuracies are the 10-fold LFW protocol's mean, averaged over seeds, with
the standard error over seeds (and each seed's 10-fold std / sqrt(10)). docs/finetune.md has the measured table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict
from PIL import Image, ImageEnhance

from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.eval.features.embedder import embed_images
from facetrain.eval.features.file import Features
from facetrain.eval.protocols.lfw import lfw_fold_accuracy, parse_lfw_pairs
from facetrain.models.trained_run import load_embedder
from facetrain.train import train

SIZE = (56, 48)  # (height, width): rendered at this size, so no resizing anywhere


@dataclass(frozen=True)
class Setup:
    """The sizes of one comparison: populations, training lengths and rates."""

    pretrain_identities: int = 1000  # many people: what pretraining is for
    pretrain_images: tuple[int, int] = (10, 20)  # long-tailed between these, as the default synthetic set
    pretrain_iterations: int = 2000
    pretrain_pairs_per_fold: int = 50  # held-out people of the pretraining population: does the model generalize?
    new_identities: int = 50  # the small set: few people ...
    new_images: int = 5  # ... with few images each
    camera_contrast: float = 0.7  # the new population's camera: grey, this contrast ...
    camera_zoom: float = 0.8  # ... a looser crop (the face at 80% of its aligned size) ...
    camera_noise: float = 0.0  # ... and this much sensor noise (std, grey levels)
    new_pairs_per_fold: int = 50  # matched pairs per fold, and as many mismatched (10 folds)
    iterations: int = 150  # fine-tuning and from-scratch training: the same length and schedule
    batch_size: int = 64
    lr: float = 0.1  # pretraining and fine-tuning
    scratch_lrs: tuple[float, ...] = (0.1, 0.3)  # from scratch: each is run, the best (mean over seeds) reported


COMMON = ["backbone=small_cnn", "backbone.feature_bn=true", "embedding_dim=128", f"input_size=[{SIZE[0]},{SIZE[1]}]",
          "loss=cosface", "loss.scale=30", "loss.margin=0.2", "device=cpu", "data.num_workers=0", "progress=false",
          "val.every=0", "log_every=50", "data.cache_dir=null"]


def camera(path: Path, contrast: float, zoom: float, noise: float) -> None:
    """The new population's sensor, written in place: grey (luma in all three channels), lower contrast, the face
    at `zoom` of its aligned size (< 1: a looser crop, black past the image border as an aligner's warp pads it)
    and Gaussian sensor noise of std `noise` grey levels (seeded by the file name: the same image, the same noise)."""
    grey = ImageEnhance.Contrast(Image.open(path).convert("L")).enhance(contrast)
    width, height = grey.size
    x0, y0 = width * (1 - 1 / zoom) / 2, height * (1 - 1 / zoom) / 2
    grey = grey.transform(grey.size, Image.Transform.EXTENT, (x0, y0, width - x0, height - y0), Image.Resampling.BILINEAR)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    pixels = np.asarray(grey, dtype=np.float32) + rng.normal(0, noise, (height, width))
    Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)).convert("RGB").save(path, quality=90)


def write_populations(data: Path, setup: Setup) -> tuple[Path, Path]:
    """(pretraining tree, new population's folder with casia/ and lfw/); each written once, then reused."""
    low, high = setup.pretrain_images
    write_synthetic_data(data / "pretrain", SynthSpec(seed=0, image_size=SIZE, train_identities=setup.pretrain_identities,
                                                      train_min_images=low, train_max_images=high,
                                                      lfw_pairs_per_fold=setup.pretrain_pairs_per_fold,
                                                      lfw_identities_per_fold=30, lfw_max_images=6), workers=1)
    new = data / "new"
    spec = SynthSpec(seed=1, image_size=SIZE, train_identities=setup.new_identities, train_min_images=setup.new_images,
                     train_max_images=setup.new_images - 1,  # the long tail's upper end is exclusive: all get exactly n
                     lfw_pairs_per_fold=setup.new_pairs_per_fold, lfw_identities_per_fold=30, lfw_max_images=6)
    summary = write_synthetic_data(new, spec, workers=1)
    if not summary.get("reused") or not (new / "camera.done").exists():
        for image in sorted(new.glob("*/*/*.jpg")):
            camera(image, setup.camera_contrast, setup.camera_zoom, setup.camera_noise)
        (new / "camera.done").write_text(f"grey, contrast {setup.camera_contrast}, zoom {setup.camera_zoom}, noise {setup.camera_noise}\n")
    return data / "pretrain", new


def config(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def run(run_dir: Path, overrides: list[str]) -> Path:
    """Train once (skipped when run_dir already holds a finished run); returns its last checkpoint."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        train(config([*COMMON, f"run_dir={run_dir}", f"checkpoint_every={10**6}", *overrides]))
    return last


def fold_accuracies(checkpoint: Path, lfw: Path) -> np.ndarray:
    """The 10 held-out fold accuracies (%) of a checkpoint on an LFW-style tree, mirror-sum features."""
    pairs = parse_lfw_pairs(lfw / "pairs.txt")
    paths = sorted(set(pairs.left) | set(pairs.right))
    backbone = load_embedder(checkpoint).embedder
    feats = embed_images(backbone, lfw, paths, torch.device("cpu"), progress=False)
    return 100 * lfw_fold_accuracy(pairs, Features(feats, paths))[0].accuracies


def compare(out: Path, data: Path, seeds: list[int], setup: Setup, ablations: bool = False) -> dict:
    """Pretrain once (cached in out/pretrain), then frozen / scratch / finetune on the new population.

    Returns method -> seed -> the 10 fold accuracies; "pretrained_own" is the pretrained model on held-out people
    of its own population, "scratch_lr<lr>" each from-scratch rate and "scratch" the best of them; with `ablations`,
    finetune variants that each change one preset key.
    """
    pretrain, new = write_populations(data, setup)
    pretrained = run(out / "pretrain", [f"data.root={pretrain / 'casia'}", f"iterations={setup.pretrain_iterations}",
                                        f"batch_size={setup.batch_size}", f"optim.lr={setup.lr}", "seed=0"])
    small = [f"data.root={new / 'casia'}", f"iterations={setup.iterations}", f"batch_size={setup.batch_size}"]
    finetune = [*small, f"optim.lr={setup.lr}", "experiment=finetune_synth", f"init_from={pretrained}"]
    methods = {f"scratch_lr{lr:g}": [*small, f"optim.lr={lr}"] for lr in setup.scratch_lrs} | {"finetune": finetune}
    if ablations:
        methods |= {"finetune_freeze_bn": [*finetune, "finetune.freeze_bn=true"],
                    "finetune_lr_mult1": [*finetune, "finetune.backbone_lr_mult=1.0"],
                    "finetune_random_classifier": [*finetune, "finetune.classifier=random"]}
    results = {"pretrained_own": {"-": fold_accuracies(pretrained, pretrain / "lfw").tolist()},
               "frozen": {"-": fold_accuracies(pretrained, new / "lfw").tolist()}}
    for name, overrides in methods.items():
        results[name] = {str(seed): fold_accuracies(run(out / f"{name}_{seed}", [*overrides, f"seed={seed}"]),
                                                    new / "lfw").tolist() for seed in seeds}
    for name, runs in results.items():
        print(f"{name}: {[round(float(np.mean(folds)), 2) for folds in runs.values()]}", flush=True)
    scratch = max((name for name in results if name.startswith("scratch_lr")),
                  key=lambda name: np.mean(list(results[name].values())))
    results["scratch"] = results[scratch] | {"lr": scratch.removeprefix("scratch_lr")}
    return results


def summarize(results: dict) -> dict[str, tuple[float, float, float]]:
    """method -> (mean accuracy over seeds, its standard error over seeds, mean 10-fold std / sqrt(10))."""
    table = {}
    for method, runs in results.items():
        folds = np.array([v for v in runs.values() if isinstance(v, list)])  # [seeds, 10]
        means = folds.mean(1)
        se_seeds = means.std(ddof=1) / np.sqrt(len(means)) if len(means) > 1 else float("nan")
        se_folds = float((folds.std(1, ddof=1) / np.sqrt(folds.shape[1])).mean())
        table[method] = (float(means.mean()), float(se_seeds), se_folds)
    return table


def setup(changes: list[str]) -> Setup:
    """Setup() with FIELD=VALUE changes (numbers; tuples as 10,20)."""
    fields = {}
    for change in changes:
        name, value = change.split("=", 1)
        numbers = [float(v) if "." in v else int(v) for v in value.split(",")]
        fields[name] = tuple(numbers) if "," in value else numbers[0]
    return Setup(**fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune_compare", help="the runs and results.json")
    parser.add_argument("--data", default="data/finetune_compare", help="the two synthetic populations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the trained methods")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="change a Setup field: new_images=4")
    parser.add_argument("--ablations", action="store_true", help="also finetune with one preset key changed at a time")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start, out = time.perf_counter(), Path(args.out)
    results = compare(out, Path(args.data), args.seeds, setup(args.set), args.ablations)
    table = summarize(results)
    (out / "results.json").write_text(json.dumps({"folds": results, "summary": table}, indent=2) + "\n")
    print(f"\nNew population's pairs (10-fold LFW protocol), {len(args.seeds)} seeds:")
    print("| method | accuracy (%) | SE over seeds | 10-fold std/sqrt(10) |\n| --- | ---: | ---: | ---: |")
    for method, (acc, se, se_folds) in table.items():
        print(f"| {method} | {acc:.2f} | {se:.2f} | {se_folds:.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
