"""`facetrain export`: write a trained backbone (the embedding network only) to TorchScript or ONNX, with its card.

Beside the file goes its model card (`<file>.json`, facetrain/models/model_card.py); the file is kept only when
it passes the parity check on real face crops (facetrain/export_parity.py).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from facetrain.backbones.base import Backbone
from facetrain.config import abs_path, check_count
from facetrain.errors import FacetrainError
from facetrain.export_parity import Parity, measure_parity, parity_crops
from facetrain.models.model_card import alignment_entry, write_card
from facetrain.models.trained_run import Preprocessing, is_facetrain_state, load_embedder
from facetrain.run.calibration_file import CALIBRATION_FILE, read_calibration
from facetrain.run.checkpoint import load_checkpoint, resolve_checkpoint, run_of_checkpoint
from facetrain.tracking.results import log_results

__all__ = ["EXPORT_FORMATS", "default_export_path", "export_backbone", "export_from_config", "load_exported",
           "max_relative_difference"]

log = logging.getLogger(__name__)

EXPORT_FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}


def example_images(backbone: Backbone, batch_size: int = 2, seed: int = 0) -> torch.Tensor:
    """Random uint8 images [B, C, H, W] of the backbone's input size: what the exported model takes."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, backbone.in_channels, *backbone.input_size)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise FacetrainError("format=onnx needs the onnx and onnxscript packages: "
                             "pip install 'facetrain[export]'") from None


def export_backbone(backbone: Backbone, fmt: str, out: Path) -> Path:
    """Export `backbone` in eval mode; the input is uint8 pixels [N, C, H, W] with any batch size N.

    Args:
        backbone: a facetrain backbone (it normalizes its own input, so the file does too).
        fmt: "torchscript" (traced) or "onnx" (torch.export-based exporter, dynamic batch).
        out: the file to write (parent folders are created).

    Returns:
        The written path.
    """
    if fmt not in EXPORT_FORMATS:
        raise FacetrainError(f"format={fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    backbone = backbone.eval().cpu()
    example = example_images(backbone)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x, yet still what C++/mobile load
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.save(torch.jit.trace(backbone, example), str(out))
        else:
            _require_onnx()
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(backbone, (example,), dynamo=True, input_names=["images"],
                                        output_names=["embeddings"], dynamic_shapes=({0: batch},),
                                        verbose=False)
            program.save(str(out))
    return out


def load_exported(path: Path, fmt: str):
    """A callable images(uint8 tensor) -> embeddings(tensor) running the exported file."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
        return lambda images: module(images)
    try:
        import onnxruntime
    except ImportError:
        raise FacetrainError("checking an ONNX export needs onnxruntime: pip install 'facetrain[export]' "
                             "(or check=false)") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: torch.from_numpy(session.run(None, {name: images.numpy()})[0])


def max_relative_difference(reference: torch.Tensor, other: torch.Tensor) -> float:
    """max |a - b| over the largest |a|: how far the exported embeddings are from PyTorch's."""
    return float((reference - other).abs().max() / reference.abs().max().clamp_min(1e-12))


def default_export_path(checkpoint: Path, fmt: str) -> Path:
    """<run dir>/export/backbone.<ext> for <run dir>/checkpoints/<name>.pt; else beside the checkpoint."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / "export" / f"backbone{EXPORT_FORMATS[fmt]}"


def _card(backbone: Backbone, fmt: str, pre: Preprocessing, checkpoint: Path, trained_cfg, iteration: int,
          parity: Parity | None) -> dict:
    """Everything but the checksum (write_card adds it): how to feed the file and read its scores."""
    std = round(1.0 / backbone.norm.scale, 6)
    run = run_of_checkpoint(checkpoint)
    calibration_file = (run or checkpoint.parent) / CALIBRATION_FILE
    calibration = read_calibration(calibration_file) if calibration_file.is_file() else None
    training = {"run_dir": None if run is None else str(run), "checkpoint": str(checkpoint), "iteration": iteration}
    if trained_cfg is not None:
        training |= {key: OmegaConf.select(trained_cfg, f"{key}._target_") for key in ("backbone", "head", "loss")}
        training["data"] = OmegaConf.select(trained_cfg, "data.root")
    return {
        "model_format": fmt,
        "input": {"size": list(pre.input_size), "channels": pre.channels,
                  "channel_order": "RGB" if pre.channels == 3 else "grey", "layout": "NCHW", "dtype": "uint8",
                  "range": [0, 255], "normalization": {"inside_model": True, "formula": f"(x - 127.5) / {std:g}",
                                                       "mean": 127.5, "std": std}},
        "preprocessing": {"fit": pre.fit, "aligned_by": "5 landmarks (alignment below)"},
        "alignment": alignment_entry(pre.input_size),
        "embedding": {"size": int(backbone.embedding_dim), "score": "cosine"},
        "calibration": calibration,
        "training_run": training,
        "parity": None if parity is None else parity.as_dict(),
    }


def _check_parity(cfg: DictConfig, backbone: Backbone, exported_file: Path, fmt: str, pre: Preprocessing,
                  trained_cfg) -> Parity:
    crops, source = parity_crops(cfg, trained_cfg, pre)
    parity = measure_parity(backbone, load_exported(exported_file, fmt), crops, source)
    log.info("parity on %s: lowest cosine %.7f, largest |difference| %.2e", source, parity.min_cosine,
             parity.max_abs_difference)
    print(f"parity: {source}: lowest cosine {parity.min_cosine:.7f}, largest |difference| "
          f"{parity.max_abs_difference:.2e} (relative {parity.max_relative_difference:.1e})")
    if not parity.min_cosine >= float(cfg.parity_cosine):  # also refuses NaN
        raise FacetrainError(f"the exported model disagrees with PyTorch: lowest cosine {parity.min_cosine:.6f} < "
                             f"parity_cosine={cfg.parity_cosine} on {source}; nothing was written")
    if not parity.max_relative_difference <= float(cfg.tolerance):
        raise FacetrainError(f"the exported model's embeddings differ from PyTorch's by "
                             f"{parity.max_relative_difference:.2e} (> tolerance={cfg.tolerance}); the export of "
                             "this backbone is not faithful; nothing was written")
    return parity


_RANGES = {"parity_cosine": (-1.0, 1.0, "the lowest cosine allowed between a crop's exported and PyTorch embeddings"),
           "tolerance": (0.0, float("inf"), "the largest max|difference| / max|embedding| allowed")}


def _check_settings(cfg: DictConfig) -> None:
    """The parity check's settings, before anything is loaded: a bad one would otherwise blame the export."""
    check_count("parity_batch", cfg.parity_batch, 1, "crops in the parity batch")
    for key, (low, high, what) in _RANGES.items():
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            bounds = f"from {low:g} to {high:g}" if high < float("inf") else f">= {low:g}"
            raise FacetrainError(f"{key}={value} must be a number {bounds} ({what})")


def _check_out(out: Path, name: str) -> None:
    if out.is_dir():
        raise FacetrainError(f"out={out} is a folder; give the file to write, e.g. out={out / name}")
    blocked = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise FacetrainError(f"out={out}: {blocked} is a file, not a folder; give out= in a folder")


_EXPORT_TAKES = "export takes a facetrain run directory or checkpoint, or an arcface_torch backbone.pth"


def export_from_config(cfg: DictConfig) -> Path:
    """The `facetrain export` command: checkpoint -> backbone -> file + model card, after the parity check.

    The file is written under a temporary name, run on real face crops (check=true) and renamed only when
    every crop's embedding matches PyTorch's (cosine >= parity_cosine); then its card is written beside it.
    A refused export leaves nothing behind.

    Args:
        cfg: the composed export.yaml (model, format, out, check, tolerance, parity_*, paths).

    Returns:
        The written file.
    """
    fmt = str(cfg.format)
    if fmt not in EXPORT_FORMATS:
        raise FacetrainError(f"format={fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    _check_settings(cfg)
    checkpoint = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    out = abs_path(cfg.out) if cfg.out else default_export_path(checkpoint, fmt)
    _check_out(out, default_export_path(checkpoint, fmt).name)
    trained = load_embedder(checkpoint, fix=_EXPORT_TAKES)  # a damaged file: not model='s hint of an .onnx model
    backbone = trained.embedder.eval()
    if not isinstance(backbone, Backbone):
        raise FacetrainError(f"model={checkpoint} is already an exported model; {_EXPORT_TAKES}")
    state = load_checkpoint(checkpoint, mmap=True)
    trained_cfg = OmegaConf.create(state["config"]) if is_facetrain_state(state) else None
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    try:
        export_backbone(backbone, fmt, tmp)
        parity = _check_parity(cfg, backbone, tmp, fmt, trained.preprocessing, trained_cfg) if cfg.check else None
        card = _card(backbone, fmt, trained.preprocessing, checkpoint, trained_cfg, trained.iteration, parity)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        card_file = write_card(out, card)
    except BaseException:
        out.unlink(missing_ok=True)  # a file without its card is half an export
        raise
    log.info("exported the backbone of %s to %s (%s), card %s", checkpoint, out, fmt, card_file)
    if card["calibration"] is None:
        print(f"no calibration.json in the run: the card has no thresholds (`facetrain eval lfw model={checkpoint}` "
              "writes one; export again after it)")
    print(f"card: {card_file}")
    if run_of_checkpoint(checkpoint) is not None:  # a facetrain run tracked in MLflow gets the card too
        log_results(run_of_checkpoint(checkpoint), files=[card_file], artifact_path="export", what="the model card")
    print(out)
    return out
