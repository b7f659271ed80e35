"""The one image reader: whole images, fit modes, and face-box crops, against Pillow by hand."""

import numpy as np
import pytest
import torch
from data_helpers import write_image
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from facetrain.data.images.face_box import crop_box
from facetrain.data.images.image_io import ImageReadError, read_image
from facetrain.errors import FacetrainError


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"  # lossless: the reference below reads the same pixels
    write_image(path, np.random.default_rng(0), size=(90, 160))
    return path


def test_crop_box_adds_the_margin_then_widens_to_the_aspect_ratio():
    assert crop_box((10, 20, 40, 40), 0.0, (112, 96)) == (10, 17, 50, 63)  # 40 wide, 40 * 112 / 96 = 46.7 tall
    left, top, right, bottom = crop_box((10, 20, 40, 40), 0.25, (112, 96))
    assert (right - left, bottom - top) == (60, 70)  # 40 * 1.5 = 60 wide, then 60 * 112 / 96 = 70 tall
    assert ((left + right) / 2, (top + bottom) / 2) == (30, 40)  # centred on the box


@pytest.mark.parametrize("box, margin", [((20, 10, 50, 40), 0.2), ((-15, -10, 60, 50), 0.0), ((140, 60, 40, 50), 0.3)])
def test_box_crop_equals_pillow_crop_then_resize(photo, box, margin):
    """The face crop is Pillow's crop (black outside the image) resized: the old eval face_crop path."""
    with Image.open(photo) as im:
        crop = np.asarray(im.convert("RGB").crop(crop_box(box, margin, (56, 48))))
    expected = TF.resize(torch.from_numpy(crop.copy()).permute(2, 0, 1), [56, 48], antialias=True)
    got = read_image(photo, (56, 48), box=box, margin=margin)
    assert got.dtype == torch.uint8 and torch.equal(got, expected)


def test_reader_errors_are_one_line(photo, tmp_path):
    with pytest.raises(FacetrainError, match=r"face box \(5, 5, 0, 10\) of .*photo.png has no area") as caught:
        read_image(photo, (56, 48), box=(5, 5, 0, 10))
    assert "\n" not in str(caught.value)
    with pytest.raises(ImageReadError, match="cannot read image .*missing.png") as caught:
        read_image(tmp_path / "missing.png", (56, 48), box=(5, 5, 10, 10))
    assert "\n" not in str(caught.value)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photo.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="cannot read image .*truncated.png.*remove or replace"):
        read_image(truncated, (56, 48))
    with pytest.raises(FacetrainError, match="fit='squash' is not known"):
        read_image(photo, (56, 48), fit="squash")
