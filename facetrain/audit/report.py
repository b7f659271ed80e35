"""The audit's files: audit.md, CSVs, PNG plots, audit.json and the exclusion list, staged then moved in."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np

from facetrain.audit.findings import Findings
from facetrain.data.selection.exclude_list import write_exclude_list
from facetrain.plotting import new_axes, save_png

__all__ = ["EXCLUDE_NAME", "write_report"]

EXCLUDE_NAME = "exclude.tsv"


def _csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _hist(path: Path, values, title: str, xlabel: str, line: float | None = None, log: bool = False,
          bins: int = 50) -> None:
    fig, ax = new_axes()
    values = np.asarray(values, float)
    if len(values):
        ax.hist(values, bins=bins, log=log, color="tab:blue")
    if line is not None:
        ax.axvline(line, color="tab:red", linestyle="--", label=f"threshold {line:g}")
        ax.legend()
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    save_png(fig, path)


def _summary(f: Findings, settings: dict, excluded: tuple[list, list]) -> dict:
    ok = f.scan["ok"]
    heights, widths = f.scan["height"][ok], f.scan["width"][ok]
    sizes = {f"{h}x{w}": int(n) for (h, w), n in zip(*np.unique(np.stack([heights, widths], 1), axis=0,
                                                                   return_counts=True), strict=True)}
    counts = f.counts
    return {
        "images": len(f.names), "identities": len(f.classes), "unreadable": int((~ok).sum()),
        "grayscale": int(f.scan["gray"][ok].sum()), "grayscale_share": float(f.scan["gray"][ok].mean()) if ok.any()
        else 0.0,
        "images_per_identity": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "identities_below_min_images": int((counts < settings["min_images"]).sum()),
        "sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:20]),
        "exact_duplicate_groups": len(f.exact_groups),
        "exact_duplicate_images": sum(len(g) - 1 for g in f.exact_groups),
        "near_duplicate_groups": len(f.near_groups),
        "near_duplicate_images": sum(len(g) - 1 for g in f.near_groups),
        "merged_identity_pairs": len(f.merged), "mislabeled_images": len(f.mislabeled),
        "eval_overlap_identities": len({r["identity"] for r in f.eval_overlap}),
        "excluded_images": len(excluded[0]), "excluded_identities": len(excluded[1]),
        "settings": settings, "notes": f.notes,
    }


def _markdown(f: Findings, s: dict, files: list[str]) -> str:
    lines = ["# Data audit", "", f"Source: `{s['settings']['source']}`" + (
        f"; model: `{s['settings']['model']}`" if s["settings"]["model"] else "; no model (pixel checks only)"), "",
        "| check | found |", "|---|---|",
        f"| images / identities | {s['images']} / {s['identities']} |",
        f"| unreadable files | {s['unreadable']} |",
        f"| grayscale images | {s['grayscale']} ({s['grayscale_share']:.1%}) |",
        f"| images per identity (min / median / max) | {s['images_per_identity']['min']} / "
        f"{s['images_per_identity']['median']:g} / {s['images_per_identity']['max']} |",
        f"| identities below min_images={s['settings']['min_images']} | {s['identities_below_min_images']} |",
        f"| exact duplicates (same decoded pixels) | {s['exact_duplicate_images']} images in "
        f"{s['exact_duplicate_groups']} groups |",
        f"| near duplicates (thumbnail distance <= {s['settings']['near_distance']:g}, aligned 1 - NCC <= "
        f"{s['settings']['near_residual']:g}) | "
        f"{s['near_duplicate_images']} images in {s['near_duplicate_groups']} groups |"]
    if s["settings"]["model"]:
        cuts = s["settings"]["cuts"]
        lines += [f"| one person under two names (cross/own similarity ratio >= {cuts['merge_threshold']:.3f}) | "
                  f"{s['merged_identity_pairs']} identity pairs |",
                  f"| mislabeled images (another centre closer by >= {cuts['mislabel_margin']:.3f}) | "
                  f"{s['mislabeled_images']} |"]
    if s["settings"]["eval"]:
        lines.append(f"| identities also in {', '.join(s['settings']['eval'])} | {s['eval_overlap_identities']} |")
    lines += ["", f"Exclusion list: `{EXCLUDE_NAME}` ({s['excluded_images']} images, {s['excluded_identities']} "
              f"identities; kinds: {', '.join(s['settings']['exclude'])}). Train without them:", "",
              f"    facetrain train data.exclude={s['settings']['out']}/{EXCLUDE_NAME} ...", "",
              "Most common image sizes: " + ", ".join(f"{k} ({v})" for k, v in list(s["sizes"].items())[:5]), ""]
    if f.quality:
        lines += ["Quality factors of the synthetic tree (mean over its images):", "",
                  "| factor | mean | max |", "|---|---|---|"]
        for key in next(iter(f.quality.values())):
            vals = np.array([q[key] for q in f.quality.values()])
            lines.append(f"| {key} | {vals.mean():.3g} | {vals.max():.3g} |")
        lines.append("")
    lines += [f"- {note}" for note in f.notes] + ([""] if f.notes else [])
    lines += ["Files: " + ", ".join(f"`{name}`" for name in files), ""]
    return "\n".join(lines)


def _to_first(by_pair: dict[tuple[int, int], float], first: int, i: int) -> str:
    """A near pair's number between a group's kept image and image `i` (blank: linked through another copy)."""
    value = by_pair.get((min(first, i), max(first, i)))
    return "0" if first == i else "" if value is None else f"{value:.4f}"


def _tables(f: Findings, stage: Path, min_images: int) -> None:
    ok = f.scan["ok"]
    _csv(stage / "images.csv", ["image", "identity", "readable", "height", "width", "grayscale", "reason"],
         ([f.names[i], f.classes[f.labels[i]], int(ok[i]), int(f.scan["height"][i]), int(f.scan["width"][i]),
           int(f.scan["gray"][i]), str(f.scan["reason"][i])] for i in range(len(f.names))))
    _csv(stage / "identities.csv", ["identity", "images", "below_min_images"],
         ([c, int(f.counts[k]), int(f.counts[k] < min_images)] for k, c in enumerate(f.classes)))
    rows = []
    for kind, groups in (("exact", f.exact_groups), ("near", f.near_groups)):
        for g_id, g in enumerate(groups):
            rows += [[kind, g_id, f.names[i], f.classes[f.labels[i]], int(n == 0),
                      *(_to_first(d, g[0], i) if kind == "near" else "0" for d in (f.near_distance, f.near_residual))]
                     for n, i in enumerate(g)]
    _csv(stage / "duplicates.csv", ["kind", "group", "image", "identity", "kept", "distance_to_first",
                                    "residual_to_first"], rows)
    _csv(stage / "merged_identities.csv", ["identity_a", "identity_b", "ratio", "cosine", "images_a", "images_b"],
         ([f.classes[a], f.classes[b], f"{r:.4f}", f"{s:.4f}", int(f.counts[a]), int(f.counts[b])]
          for a, b, r, s in sorted(f.merged, key=lambda m: -m[2])))  # the most alike first
    _csv(stage / "mislabeled.csv", ["image", "identity", "closest_identity", "cosine_own", "cosine_closest"],
         ([f.names[i], f.classes[f.labels[i]], f.classes[o], f"{own:.4f}", f"{sim:.4f}"]
          for i, o, own, sim in sorted(f.mislabeled, key=lambda m: m[2] - m[3])))  # the widest margin first
    _csv(stage / "eval_overlap.csv", ["identity", "eval_set", "person", "ratio", "cosine", "photos", "chance",
                                      "found_by"],
         ([r["identity"], r["set"], r["person"], *(_number(r[k]) for k in ("ratio", "cosine")),
           "" if r["photos"] is None else r["photos"], _number(r["chance"]), r["by"]] for r in f.eval_overlap))


def _number(x: float | None) -> str:
    """A CSV cell: four decimals, or empty where there is no number (found by name; no chance without draws)."""
    return "" if x is None or not np.isfinite(x) else f"{x:.4f}"


def _plots(f: Findings, stage: Path, settings: dict) -> None:
    _hist(stage / "images_per_identity.png", f.counts, "images per identity", "images", settings["min_images"],
          log=True)
    ok = f.scan["ok"]
    _hist(stage / "image_heights.png", f.scan["height"][ok], "image heights", "pixels")
    if f.nearest_thumb is not None:
        _hist(stage / "near_duplicate_distance.png", f.nearest_thumb, "nearest other image (thumbnail)",
              "cosine distance", settings["near_distance"], log=True)
    if f.merge_ratio is not None:
        _hist(stage / "identity_similarity_ratio.png", f.merge_ratio, "closest other identity: cross/own image "
              "similarity", "ratio (1: as alike as its own photos)", settings["cuts"]["merge_threshold"], log=True)
    if f.mislabel_gap is not None:
        _hist(stage / "mislabel_margin.png", f.mislabel_gap, "closest other centre minus own centre",
              "cosine difference", settings["cuts"]["mislabel_margin"], log=True)
    if f.quality:
        _hist(stage / "quality.png", [q["quality"] for q in f.quality.values()], "synthetic quality level",
              "quality (0 pristine .. 1 worst)")


def write_report(f: Findings, out: Path, settings: dict) -> dict:
    """Write every file into `out` (created): built in a hidden staging folder first, so an error while
    writing leaves no half set; returns the summary (audit.json)."""
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".audit.tmp{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        excluded = f.exclusions(settings["exclude"])
        summary = _summary(f, settings, excluded)
        _tables(f, stage, settings["min_images"])
        _plots(f, stage, settings)
        write_exclude_list(stage / EXCLUDE_NAME, *excluded, header=f"facetrain data audit of {settings['source']}; "
                           "apply with data.exclude=THIS_FILE")
        (stage / "audit.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        files = sorted(p.name for p in stage.iterdir()) + ["audit.md"]
        (stage / "audit.md").write_text(_markdown(f, summary, files))
        for path in sorted(stage.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary
