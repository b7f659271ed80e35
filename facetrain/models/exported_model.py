"""A file written by `facetrain export` (TorchScript or ONNX) opened through its model card, checked against it."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.models.model_card import card_path
from facetrain.models.trained_run import Preprocessing, TrainedModel

__all__ = ["TorchScriptEmbedder", "load_carded"]


class TorchScriptEmbedder(nn.Module):
    """uint8 images [N, C, H, W] -> embeddings, by a TorchScript file; its input size and channels from the card."""

    def __init__(self, path: Path, input_size: tuple[int, int], channels: int):
        super().__init__()
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x, yet still what C++/mobile load
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:
            raise FacetrainError(f"cannot load the TorchScript model {path}: {str(err).splitlines()[0]}") from None
        self.input_size, self.in_channels = tuple(input_size), int(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(images.cpu()).to(images.device)


def _mismatch(path: Path, what: str, card_says, file_has) -> FacetrainError:
    return FacetrainError(f"model card {card_path(path)} does not match {path}: the card says {what} {card_says}, the "
                          f"file has {file_has}; re-export with `facetrain export` to write both together")


def load_carded(path: Path, card: dict) -> TrainedModel:
    """The embedder of an exported file, fed as its card says; one line when the card and the file disagree."""
    size = tuple(int(s) for s in card["input"]["size"])
    channels, dim = int(card["input"]["channels"]), int(card["embedding"]["size"])
    if card.get("model_format") == "onnx":
        from facetrain.models.onnx_model import OnnxEmbedder  # onnxruntime only when an ONNX file is scored

        embedder = OnnxEmbedder(path)
        if tuple(embedder.input_size) != size or embedder.in_channels != channels:
            raise _mismatch(path, "input", f"{channels}x{size[0]}x{size[1]}",
                            f"{embedder.in_channels}x{embedder.input_size[0]}x{embedder.input_size[1]}")
    else:
        embedder = TorchScriptEmbedder(path, size, channels)
    with torch.no_grad():
        try:
            got = embedder(torch.zeros((1, channels, *size), dtype=torch.uint8)).shape[-1]
        except Exception as err:
            raise _mismatch(path, "input", f"{channels}x{size[0]}x{size[1]} uint8",
                            f"a network that refuses it ({str(err).splitlines()[0][:120]})") from None
    if got != dim:
        raise _mismatch(path, "embedding size", dim, got)
    run = card.get("training_run") or {}
    fit = str((card.get("preprocessing") or {}).get("fit", "resize"))
    return TrainedModel(embedder, int(run.get("iteration") or 0), Preprocessing(size, fit, channels))
