"""data.decode=cuda: loader workers read JPEG bytes, the GPU decodes each batch with nvJPEG (few CPU cores per GPU).

NOT MEASURED ON A GPU: written against the documented batch APIs (TorchCodec's `decode_jpeg(list,
device="cuda")`, else torchvision.io's) and tested only with device="cpu", where the same calls run on
libjpeg-turbo. Expected differences on a GPU, unmeasured: nvJPEG's IDCT and chroma upsampling are not
libjpeg-turbo's, and the antialiased resize runs in another kernel, so pixels may differ from the CPU path
by a few levels; nvJPEG may decode damaged entropy-coded data that Pillow refuses (truncated files are
still caught: workers send only JPEGs that end with their EOI marker).

What the GPU does not take stays on the CPU, as today: the workers decode non-JPEGs and CMYK JPEGs
themselves (`IdentityDataset._fetch`), and a JPEG that nvJPEG refuses is decoded, or listed in
bad_files.tsv and replaced by the next readable sample, by the dataset in the main process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from facetrain.data.images.image_io import fit_image

__all__ = ["DeviceDecodedBatches", "collate_encoded", "decode_jpegs"]


def _batch_decode(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    try:
        from torchcodec.decoders import decode_jpeg

        return decode_jpeg(data, mode="RGB", device=device)
    except ImportError:
        from torchvision.io import ImageReadMode, decode_jpeg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """uint8 [3, H, W] images on `device`, one call for the batch; None for each JPEG the decoder refuses."""
    if not data:
        return []
    try:
        return list(_batch_decode(data, device))
    except RuntimeError:  # one bad image fails the batch call: find it
        out: list[torch.Tensor | None] = []
        for item in data:
            try:
                out.append(_batch_decode([item], device)[0])
            except RuntimeError:
                out.append(None)
        return out


def collate_encoded(samples: list[tuple[torch.Tensor, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
    """(items: JPEG bytes or decoded images, labels, sample positions) of an `encoded` dataset's samples."""
    return [s[0] for s in samples], torch.tensor([s[1] for s in samples], dtype=torch.int64), [s[2] for s in samples]


class DeviceDecodedBatches:
    """(images [B, 3, H, W] on `device`, labels) from a DataLoader over an `encoded` IdentityDataset.

    Args:
        loader: a DataLoader with `collate_fn=collate_encoded`.
        dataset: the dataset (its CPU path takes what the decoder refuses).
        device: where batches are decoded and brought to `size`.
        size: (height, width), as the dataset's input_size.
        fit: `resize` or `crop`, as the dataset's.
    """

    def __init__(self, loader: DataLoader, dataset, device: torch.device, size: Sequence[int], fit: str):
        self.loader, self.dataset, self.device, self.size, self.fit = loader, dataset, device, size, fit

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for items, labels, positions in self.loader:
            yield self.decode(items, labels, positions)

    def decode(self, items: list[torch.Tensor], labels: torch.Tensor, positions: list[int]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode the batch's JPEG bytes on the device; the CPU path for the rest; every image to `size`."""
        jpegs = [k for k, item in enumerate(items) if item.dim() == 1]
        images = [item.to(self.device, non_blocking=True) for item in items]
        for k, image in zip(jpegs, decode_jpegs([items[k] for k in jpegs], self.device), strict=True):
            if image is None:  # refused by the decoder: Pillow decides, a broken file is listed and replaced
                image, labels[k] = self.dataset.decoded_item(positions[k])
            images[k] = fit_image(image.to(self.device), self.size, self.fit)
        return torch.stack(images), labels
