"""embed_images reads through the one image reader: fit=crop as in training, grey input for 1-channel models."""

import numpy as np
import pytest
import torch
from PIL import Image

from facetrain.backbones import LeNetPP, SmallFaceCNN
from facetrain.errors import FacetrainError
from facetrain.eval.features.embedder import embed_images

CPU = torch.device("cpu")


def _save(path, array):
    Image.fromarray(array).save(path)  # PNG: lossless, so a saved crop holds exactly the cropped pixels
    return path.name


def test_fit_crop_equals_embedding_the_precropped_images(tmp_path):
    """56x48 input: a 70x120 image keeps its centre 70x60 columns 30..90, a 100x60 one rows 15..85."""
    rng = np.random.default_rng(0)
    wide, tall = rng.integers(0, 256, (70, 120, 3), dtype=np.uint8), rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)
    originals = [_save(tmp_path / "wide.png", wide), _save(tmp_path / "tall.png", tall)]
    cropped = [_save(tmp_path / "wide_c.png", wide[:, 30:90]), _save(tmp_path / "tall_c.png", tall[15:85])]
    torch.manual_seed(0)
    model = SmallFaceCNN(embedding_dim=8, input_size=(56, 48), channels=(4, 8, 8, 16))
    got = embed_images(model, tmp_path, originals, CPU, progress=False, fit="crop")
    expected = embed_images(model, tmp_path, cropped, CPU, progress=False)
    np.testing.assert_array_equal(got, expected)
    assert not np.allclose(embed_images(model, tmp_path, originals, CPU, progress=False), expected)  # resize squashes


def test_channels_1_feeds_grey_images_to_a_1_channel_model(tmp_path):
    rng = np.random.default_rng(1)
    digits = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(3)]
    paths = [_save(tmp_path / f"{k}.png", d) for k, d in enumerate(digits)]
    torch.manual_seed(0)
    model = LeNetPP()  # in_channels=1: it refuses 3-channel input
    seen = []
    model.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    feats = embed_images(model, tmp_path, paths, CPU, mirror="none", batch_size=2, progress=False, channels=1)
    assert feats.shape == (3, 2) and [tuple(x.shape) for x in seen] == [(2, 1, 28, 28), (1, 1, 28, 28)]
    # a grey file comes back with its own values (luma rounded, not truncated)
    np.testing.assert_array_equal(torch.cat(seen)[:, 0].numpy(), np.stack(digits))


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": 2}, "channels=2 is not supported; use 3 .* or 1"),
    ({"fit": "squash"}, "fit='squash' is not known; use one of resize, crop"),
    ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
    ({"num_workers": "two"}, "num_workers='two' must be an integer >= 0"),
])
def test_bad_settings_fail_before_any_image_is_read(tmp_path, kwargs, message):
    with pytest.raises(FacetrainError, match=message):
        embed_images(SmallFaceCNN(), tmp_path, ["not_there.png"], CPU, progress=False, **kwargs)
