"""The libjpeg-turbo fast path gives Pillow's pixels and Pillow's verdict on broken files, or hands over to Pillow."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from facetrain.data.images import jpeg_decoder
from facetrain.data.images.image_io import ImageReadError, decode_image, fit_image, read_image


def _pillow(data: bytes, size=None, fit="resize") -> torch.Tensor:
    """Today's reference: Pillow decodes, converts to RGB; fit_image brings it to size."""
    with Image.open(io.BytesIO(data)) as im:
        array = np.asarray(im.convert("RGB"))
    return fit_image(torch.from_numpy(array.copy()).permute(2, 0, 1), size, fit)


def _encode(array: np.ndarray, mode: str = "RGB", fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert(mode).save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def face():
    """A smooth 112x112 image with texture, like an aligned crop."""
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize((112, 112), Image.BICUBIC)
    return np.clip(np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (112, 112, 3)), 0, 255).astype(np.uint8)


def _backends():
    """The active backend and torchvision.io's (the fallback when TorchCodec is absent)."""
    names = {jpeg_decoder.JPEG_BACKEND: jpeg_decoder._DECODE}
    if jpeg_decoder.JPEG_BACKEND != "torchvision":
        names["torchvision"] = jpeg_decoder._torchvision()
    return names


VARIANTS = {  # name -> (Pillow colour mode, save options, the fast path takes it)
    "420": ("RGB", {"quality": 90}, True), "444": ("RGB", {"quality": 95, "subsampling": 0}, True),
    "422": ("RGB", {"subsampling": 1}, True), "progressive": ("RGB", {"progressive": True}, True),
    "optimized": ("RGB", {"optimize": True, "quality": 100}, True), "gray": ("L", {}, True),
    "cmyk": ("CMYK", {}, False),
}


@pytest.mark.parametrize("backend", list(_backends()))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fast_path_gives_pillows_pixels_or_hands_over(face, variant, backend, monkeypatch):
    monkeypatch.setattr(jpeg_decoder, "_DECODE", _backends()[backend])
    mode, options, fast = VARIANTS[variant]
    for array in (face, face[:97, 5:88]):  # and an odd size, not a multiple of the 16-pixel MCU
        data = _encode(array, mode, **options)
        assert (jpeg_decoder.decode_jpeg_fast(data) is not None) == fast
        for size, fit in ((None, "resize"), ((112, 96), "resize"), ((56, 48), "crop")):
            assert torch.equal(decode_image(data, size, fit), _pillow(data, size, fit))


def test_png_and_other_formats_still_decode_through_pillow(face, tmp_path):
    for fmt, mode in (("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB"), ("WEBP", "RGB")):
        data = _encode(face, mode, fmt)
        assert jpeg_decoder.decode_jpeg_fast(data) is None
        path = tmp_path / f"face.{fmt.lower()}"
        path.write_bytes(data)
        assert torch.equal(read_image(path, (112, 96)), _pillow(data, (112, 96)))


@pytest.mark.parametrize("backend", list(_backends()))
def test_damaged_jpegs_fail_exactly_where_pillow_fails(face, backend, monkeypatch):
    """Truncations, flipped bytes and cut-out runs: the same pixels where Pillow decodes, ImageReadError where
    it does not (so the loaders list and skip the same files as before)."""
    monkeypatch.setattr(jpeg_decoder, "_DECODE", _backends()[backend])
    rng = np.random.default_rng(1)
    sources = [_encode(face, "RGB", quality=90), _encode(face, "RGB", progressive=True), _encode(face, "L")]
    outcomes = {"both decode": 0, "both refuse": 0}
    for trial in range(120):
        data = bytearray(sources[trial % 3])
        if trial % 4 == 0:
            data = data[: rng.integers(3, len(data))]
        elif trial % 4 in (1, 2):
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(2, len(data))] = rng.integers(0, 256)
        else:
            cut = rng.integers(2, len(data))
            data = data[:cut] + data[cut + rng.integers(1, 50):]
        try:
            expected = _pillow(bytes(data))
        except Exception:  # noqa: BLE001 - whatever Pillow raises, facetrain must refuse the file
            with pytest.raises(ImageReadError, match="cannot read image <bytes>"):
                decode_image(bytes(data))
            outcomes["both refuse"] += 1
            continue
        assert torch.equal(decode_image(bytes(data)), expected)
        outcomes["both decode"] += 1
    assert min(outcomes.values()) > 10  # the fuzz exercised both verdicts


def test_not_a_jpeg_and_the_backend_name():
    assert jpeg_decoder.JPEG_BACKEND in ("torchcodec", "torchvision", "pillow")
    assert jpeg_decoder.is_jpeg(b"\xff\xd8\xff\xe0rest") and not jpeg_decoder.is_jpeg(b"\x89PNG\r\n")
    with pytest.raises(ImageReadError, match="cannot read image x.jpg"):
        decode_image(b"\xff\xd8\xff" + bytes(100), name="x.jpg")
