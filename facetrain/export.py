"""`facetrain export`: write a trained backbone (the embedding network only) to TorchScript or ONNX."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig

from facetrain.backbones.base import Backbone
from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.models.trained_run import load_embedder
from facetrain.run.checkpoint import resolve_checkpoint

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


def export_from_config(cfg: DictConfig) -> Path:
    """The `facetrain export` command: checkpoint -> backbone -> file, then (check=true) compare outputs.

    Args:
        cfg: the composed export.yaml (model, format, out, check, tolerance, paths).

    Returns:
        The written file.
    """
    fmt = str(cfg.format)
    if fmt not in EXPORT_FORMATS:
        raise FacetrainError(f"format={fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    checkpoint = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    backbone = load_embedder(checkpoint).embedder.eval()
    if not isinstance(backbone, Backbone):
        raise FacetrainError(f"model={checkpoint} is already an exported model; export takes a facetrain checkpoint "
                             "or an arcface_torch backbone.pth")
    out = abs_path(cfg.out) if cfg.out else default_export_path(checkpoint, fmt)
    export_backbone(backbone, fmt, out)
    log.info("exported the backbone of %s to %s (%s)", checkpoint, out, fmt)
    if cfg.check:
        images = example_images(backbone, batch_size=3, seed=1)  # another batch size than the trace's
        with torch.no_grad():
            diff = max_relative_difference(backbone(images), load_exported(out, fmt)(images))
        if diff > float(cfg.tolerance):
            raise FacetrainError(f"the exported model's embeddings differ from PyTorch's by {diff:.2e} "
                                 f"(> tolerance={cfg.tolerance}); the export of this backbone is not faithful")
        log.info("check: exported embeddings match PyTorch's (max relative difference %.1e)", diff)
    print(out)
    return out
