"""LabelledDataset: what the trainer reads of any training set — its labels and its class names."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

__all__ = ["LabelledDataset"]


class LabelledDataset(Dataset):
    """A dataset of (image, label) samples with `labels` (one per sample, for P x K batches) and `classes`
    (the class names in label order; their count sizes the classifier)."""

    labels: Sequence[int]
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)
