"""Does fine-tuning a pretrained model on a small new population beat the alternatives? Measured on the synthetic twin.

    .venv/bin/python scripts/finetune_compare.py                  # ~12 min on 1 shared CPU core; prints the table
    .venv/bin/python scripts/finetune_compare.py --seeds 0 1 2 3 4 --out runs/finetune_compare

1. Pretrain (`loss=cosface`, small CNN at 56x48) on one synthetic population: many people, many images each.
2. A new population: other synthetic people (another synth seed) seen through another camera (grey, lower
   contrast: a near-infrared-like sensor), with few images per person for training and LFW-style pairs
   (10 folds, people disjoint from the training people) for the comparison.
3. On the new population's pairs, compare
   - frozen:   the pretrained model as it is;
   - scratch:  the same network trained on the small set alone (same iterations, lr, warm-up);
   - finetune: `experiment=finetune` from the pretrained run (classifier from class means, backbone lr x 0.1,
               BatchNorm frozen, warm-up).
Each trained method runs over --seeds; accuracies are the 10-fold LFW protocol's mean, averaged over seeds, with
the standard error over seeds (and each seed's 10-fold std / sqrt(10)). docs/finetune.md has the measured table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
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

    pretrain_identities: int = 200
    pretrain_images: tuple[int, int] = (10, 30)  # long-tailed between these, as the default synthetic set
    pretrain_iterations: int = 500
    new_identities: int = 100
    new_images: int = 5  # per person: the small set
    new_pairs_per_fold: int = 50  # matched pairs per fold, and as many mismatched (10 folds)
    iterations: int = 150  # fine-tuning and from-scratch training
    batch_size: int = 64
    lr: float = 0.1


COMMON = ["backbone=small_cnn", "backbone.feature_bn=true", "embedding_dim=128", f"input_size=[{SIZE[0]},{SIZE[1]}]",
          "loss=cosface", "loss.scale=30", "loss.margin=0.2", "device=cpu", "data.num_workers=0", "progress=false",
          "val.every=0", "log_every=50", "data.cache_dir=null"]


def camera(path: Path) -> None:
    """The new population's sensor: grey (luma in all three channels) at 70% contrast, written in place."""
    image = Image.open(path).convert("L").convert("RGB")
    ImageEnhance.Contrast(image).enhance(0.7).save(path, quality=90)


def write_populations(data: Path, setup: Setup) -> tuple[Path, Path]:
    """(pretraining tree, new population's folder with casia/ and lfw/); each written once, then reused."""
    low, high = setup.pretrain_images
    write_synthetic_data(data / "pretrain", SynthSpec(seed=0, image_size=SIZE, train_identities=setup.pretrain_identities,
                                                      train_min_images=low, train_max_images=high, lfw_pairs_per_fold=20,
                                                      lfw_identities_per_fold=10), workers=1)
    new = data / "new"
    spec = SynthSpec(seed=1, image_size=SIZE, train_identities=setup.new_identities, train_min_images=setup.new_images,
                     train_max_images=setup.new_images - 1,  # the long tail's upper end is exclusive: all get exactly n
                     lfw_pairs_per_fold=setup.new_pairs_per_fold, lfw_identities_per_fold=30, lfw_max_images=6)
    summary = write_synthetic_data(new, spec, workers=1)
    if not summary.get("reused") or not (new / "camera.done").exists():
        for image in sorted(new.glob("*/*/*.jpg")):
            camera(image)
        (new / "camera.done").write_text("grey, contrast 0.7\n")
    return data / "pretrain" / "casia", new


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


def compare(out: Path, data: Path, seeds: list[int], setup: Setup) -> dict:
    """Pretrain once, then frozen / scratch / finetune on the new population; per-seed fold accuracies."""
    pretrain_tree, new = write_populations(data, setup)
    pretrained = run(out / "pretrain", [f"data.root={pretrain_tree}", f"iterations={setup.pretrain_iterations}",
                                        f"batch_size={setup.batch_size}", f"optim.lr={setup.lr}", "seed=0"])
    small = [f"data.root={new / 'casia'}", f"iterations={setup.iterations}", f"batch_size={setup.batch_size}",
             f"optim.lr={setup.lr}"]
    results = {"frozen": {"-": fold_accuracies(pretrained, new / "lfw").tolist()}, "scratch": {}, "finetune": {}}
    for seed in seeds:
        scratch = run(out / f"scratch_{seed}", [*small, f"seed={seed}"])
        tuned = run(out / f"finetune_{seed}", [*small, f"seed={seed}", "experiment=finetune_synth",
                                               f"init_from={pretrained}"])
        results["scratch"][str(seed)] = fold_accuracies(scratch, new / "lfw").tolist()
        results["finetune"][str(seed)] = fold_accuracies(tuned, new / "lfw").tolist()
    return results


def summarize(results: dict) -> dict[str, tuple[float, float, float]]:
    """method -> (mean accuracy over seeds, its standard error over seeds, mean 10-fold std / sqrt(10))."""
    table = {}
    for method, runs in results.items():
        folds = np.array(list(runs.values()))  # [seeds, 10]
        means = folds.mean(1)
        se_seeds = means.std(ddof=1) / np.sqrt(len(means)) if len(means) > 1 else float("nan")
        se_folds = float((folds.std(1, ddof=1) / np.sqrt(folds.shape[1])).mean())
        table[method] = (float(means.mean()), float(se_seeds), se_folds)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune_compare", help="the runs and results.json")
    parser.add_argument("--data", default="data/finetune_compare", help="the two synthetic populations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the trained methods")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start, out = time.perf_counter(), Path(args.out)
    results = compare(out, Path(args.data), args.seeds, Setup())
    table = summarize(results)
    (out / "results.json").write_text(json.dumps({"folds": results, "summary": table}, indent=2) + "\n")
    print(f"\nNew population's pairs (10-fold LFW protocol), {len(args.seeds)} seeds:")
    print("| method | accuracy (%) | SE over seeds | 10-fold std/sqrt(10) |\n| --- | ---: | ---: | ---: |")
    for method, (acc, se, se_folds) in table.items():
        print(f"| {method} | {acc:.2f} | {se:.2f} | {se_folds:.2f} |")
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
