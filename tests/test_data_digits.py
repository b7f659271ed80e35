"""IDX digits (MNIST / Fashion-MNIST): the file format, the dataset, and data=mnist through the config."""

import numpy as np
import pytest
from data_helpers import write_digits
from helpers import compose_config
from hydra.utils import instantiate

from facetrain.data.formats.idx_digits import IdxDigits, read_idx, write_idx
from facetrain.errors import FacetrainError


def test_idx_header_and_data(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(path, array)
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:8] == (2).to_bytes(4, "big") and len(raw) == 4 + 12 + 24
    np.testing.assert_array_equal(read_idx(path), array)
    path.write_bytes(raw[:-1])
    with pytest.raises(FacetrainError, match="damaged"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_digits_dataset(tmp_path, gz):
    root = write_digits(tmp_path / "mnist", gz=gz)
    ds = IdxDigits(root)
    assert len(ds) == 12 and ds.num_classes == 10
    image, label = ds[7]
    assert image.shape == (1, 28, 28) and image.dtype.is_floating_point is False and label == 7
    assert int(image[0, 5, 5]) == 70 and int(image[0, 0, 1]) == 255
    assert len(IdxDigits(root, split="test")) == 5
    assert IdxDigits(root, channels=3)[3][0].shape == (3, 28, 28)
    with pytest.raises(FacetrainError, match="not found"):
        IdxDigits(tmp_path)


@pytest.mark.parametrize("option", ["mnist", "fashion_mnist"])
def test_digits_configs(tmp_path, option):
    root = write_digits(tmp_path / option)
    cfg = compose_config("train", [f"data={option}", f"data.root={root}"])
    assert cfg.data.hflip is False
    assert instantiate(cfg.data.dataset)[0][0].shape == (1, 28, 28)
