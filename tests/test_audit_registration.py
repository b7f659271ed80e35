"""The near-duplicate check's alignment: a crop resized back, a shrunk or recompressed copy match their source
once aligned; another photo of the same person does not; alignment is what makes the crop match."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facetrain.audit.hashing import thumbnail
from facetrain.audit.registration import _ncc, _on_grid, aligned_residuals, residual

_CUT = 0.025  # configs/data.yaml: audit.near_residual


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


def _tensor(image: Image.Image, quality: int = 90) -> torch.Tensor:
    """uint8 [3, H, W]: the image saved as JPEG at `quality` and decoded again."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return _pixels(Image.open(buffer))


def decode_image(path: str) -> torch.Tensor:
    return _pixels(Image.open(path))


@pytest.fixture
def photos(tiny_data) -> list[Path]:
    """Two photos of one synthetic person."""
    folder = sorted((tiny_data / "synth" / "casia").iterdir())[0]
    return sorted(folder.iterdir())[:2]


def test_copies_match_their_source_once_aligned_and_another_photo_does_not(photos):
    source = Image.open(photos[0]).convert("RGB")
    w, h = source.size
    crop = source.crop((round(0.06 * w), round(0.02 * h), w - round(0.03 * w), h - round(0.05 * h))).resize((w, h))
    copies = {"crop": _tensor(crop), "shrunk": _tensor(source.resize((round(0.6 * w), round(0.6 * h)))),
              "recompressed": _tensor(source, quality=35)}
    original, other = _tensor(source, quality=95), decode_image(str(photos[1]))
    for name, copy in copies.items():
        assert residual(copy, original) <= _CUT, name
        assert residual(original, copy) <= _CUT, name  # whichever is passed first
    assert residual(other, original) > 2 * _CUT
    distance = 1 - float(thumbnail(copies["crop"]) @ thumbnail(original))
    assert distance > 1 - float(thumbnail(copies["recompressed"]) @ thumbnail(original))  # the crop moved it most


def test_alignment_undoes_the_crop_that_plain_correlation_sees(photos):
    """Unaligned, the crop's correlation with its source is what remains after alignment many times over."""
    source = Image.open(photos[0]).convert("RGB")
    w, h = source.size
    crop = _tensor(source.crop((round(0.06 * w), 0, w, h - round(0.06 * h))).resize((w, h)))
    original = _tensor(source, quality=95)
    a, b = _on_grid(crop, original)
    plain = 1 - float(_ncc(a[None], b[None])[0])
    assert residual(crop, original) < plain / 4
    assert residual(original, original) < 1e-4


def test_residuals_of_a_batch_equal_each_pairs_own(photos):
    images = [decode_image(str(p)) for p in photos] + [decode_image(str(photos[0]))[:, 4:, 4:]]
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    together = aligned_residuals(lambda i: images[i], pairs, batch_size=2)
    alone = [residual(images[i], images[j]) for i, j in pairs]
    assert np.allclose(together, alone, atol=1e-5)
    assert together[1] < _CUT < together[0]  # the corner-cut copy, not the other photo
    assert len(aligned_residuals(lambda i: images[i], np.zeros((0, 2), np.int64))) == 0
