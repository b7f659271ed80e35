"""collate_images: the same batch values either way; NHWC strides only when the model is channels_last."""

import torch

from facetrain.data.images.collate import collate_images, image_collate


def test_batches_hold_the_same_values_in_the_asked_layout():
    g = torch.Generator().manual_seed(0)
    hwc = [torch.randint(0, 256, (6, 5, 3), dtype=torch.uint8, generator=g) for _ in range(4)]
    samples = [(x.permute(2, 0, 1), k) for k, x in enumerate(hwc)]  # as the decoders give them
    plain, labels = collate_images(samples)
    nhwc, same_labels = image_collate(True)(samples)
    assert plain.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)
    assert not nhwc.is_contiguous() and torch.equal(plain, nhwc) and plain.shape == (4, 3, 6, 5)
    assert labels.tolist() == same_labels.tolist() == [0, 1, 2, 3] and labels.dtype == torch.int64
    mixed = [*samples[:2], (samples[2][0].contiguous(), 2)]  # an image without NHWC strides: stacked plainly
    assert collate_images(mixed, channels_last=True)[0].is_contiguous()
