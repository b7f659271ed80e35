"""From photos to model-ready crops: listed, decoded, a face found and warped onto the 5-point template.

The face detector is any callable `detector(images: list[PIL.Image]) -> list[detection | None]` whose
detections carry `.landmarks` (5 x 2: eyes, nose tip, mouth corners, as seen in the image); with
`aligned=true` the photos are already aligned crops and are only brought to the input size, as `facetrain
eval` reads crops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facetrain.config import abs_path
from facetrain.data.formats.file_index import IMAGE_EXTENSIONS
from facetrain.data.images.alignment import warp_face
from facetrain.data.images.image_io import read_image
from facetrain.errors import FacetrainError

__all__ = ["Detector", "default_detector", "list_photos", "open_photo", "photo_crops"]

Detector = Callable[[list[Image.Image]], Sequence[object | None]]
_DETECT_BATCH = 16  # photos per detector call: batched, yet a folder of large photos stays in memory bounds


def list_photos(spec: str | Path, what: str = "photo") -> list[Path]:
    """A photo file, or every image file under a folder (sorted); one line for a missing path or an empty folder."""
    path = abs_path(str(spec))
    if path.is_file():
        return [path]
    if not path.exists():
        raise FacetrainError(f"{what} {path} does not exist; give an image file or a folder of images")
    photos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not photos:
        raise FacetrainError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}); give a folder of photos")
    return photos


def open_photo(path: Path) -> Image.Image:
    """The photo as RGB, turned upright by its EXIF orientation; one line when the file is not an image."""
    try:
        with Image.open(path) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    except IsADirectoryError:
        raise FacetrainError(f"cannot read image {path} (it is a directory); give an image file") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        reason = str(err) or type(err).__name__
        raise FacetrainError(f"cannot read image {path} ({reason}); give a JPEG/PNG photo") from None


def _crop(image: Image.Image, detection, path: Path, size: Sequence[int]) -> torch.Tensor:
    if detection is None:
        raise FacetrainError(f"no face found in {path}; give a photo with a visible face, or pass aligned=true "
                             "if it is already an aligned face crop")
    points = np.asarray(getattr(detection, "landmarks", detection), dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise FacetrainError(f"the detector gave {path} landmarks of shape {points.shape}; 5 (x, y) points needed")
    return torch.from_numpy(np.asarray(warp_face(image, points, size)).copy()).permute(2, 0, 1)


def photo_crops(paths: Sequence[Path], size: Sequence[int], *, aligned: bool, detector: Detector | None = None,
                fit: str = "resize") -> list[torch.Tensor]:
    """uint8 RGB crops [3, H, W] at `size` (height, width), one per photo.

    Args:
        paths: the photos.
        size: the model's input size; the 5-point template is placed for it.
        aligned: the photos are aligned crops already: brought to `size` by `fit`, no detection.
        detector: finds one face per photo (None for no face); needed unless `aligned`.
        fit: how aligned crops reach `size` (the model's training fit).

    Raises:
        FacetrainError: (one line naming the file) not an image, or no face found.
    """
    if aligned:
        return [read_image(p, size, fit) for p in paths]
    if detector is None:
        raise FacetrainError("photos need a face detector; pass aligned=true for aligned face crops")
    crops: list[torch.Tensor] = []
    for start in range(0, len(paths), _DETECT_BATCH):
        chunk = list(paths[start:start + _DETECT_BATCH])
        images = [open_photo(p) for p in chunk]
        found = list(detector(images))
        if len(found) != len(images):
            raise FacetrainError(f"the face detector answered {len(found)} of {len(images)} photos")
        crops += [_crop(im, det, p, size) for im, det, p in zip(images, found, chunk, strict=True)]
    return crops


def default_detector(pick: str = "largest", device: str = "cpu") -> Detector:
    """facetrain's bundled detector (facetrain.detect), keeping one face per photo by `pick`."""
    try:
        from facetrain.detect import detect_faces
    except ImportError:
        raise FacetrainError("this facetrain has no face detector (facetrain.detect); pass aligned=true with "
                             "aligned face crops (facetrain data align makes them)") from None
    return lambda images: detect_faces(images, pick=pick, device=device)
