"""`facetrain eval bin`: insightface .bin sets scored as LFW is (same pairs, same folds -> same accuracy), several at once."""

import json
import pickle

import numpy as np
import pytest
from bin_helpers import lfw_as_bin, write_py2_bin
from helpers import compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate

from facetrain.errors import FacetrainError
from facetrain.eval.protocols.bin import bin_folds


@pytest.fixture(scope="module")
def model(tiny_data, tmp_path_factory):
    from facetrain.train import train

    run = tmp_path_factory.mktemp("binmodel") / "run"
    train(compose_config("train", tiny_train_overrides(tiny_data, run)))
    return run


def _evaluate(tiny_data, out, protocol, *overrides):
    cfg = compose_config("eval", [f"protocol={protocol}", f"paths.data={tiny_data}", f"run_dir={out}", "device=cpu",
                                  "progress=false", "num_workers=0", "cache=false", *overrides])
    return instantiate(cfg.protocol.evaluate)(cfg)


def test_folds_are_consecutive_runs_as_insightface_splits():
    np.testing.assert_array_equal(bin_folds(40), np.arange(40) * 10 // 40)
    assert np.bincount(bin_folds(6003)).tolist() == [601, 601, 601] + [600] * 7  # sklearn KFold(10) sizes


def test_bin_accuracy_equals_lfw_on_the_same_pairs(tiny_data, model, tmp_path, capsys):
    lfw_bin = lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "lfw.bin")
    lfw = _evaluate(tiny_data, tmp_path / "lfw", "lfw", f"model={model}")
    got = _evaluate(tiny_data, tmp_path / "bin", "bin", f"model={model}", f"protocol.paths={lfw_bin}",
                    "protocol.threshold_search=exhaustive")  # LFW's search (the default is insightface's grid)
    assert got["bin/lfw/acc_mean"] == lfw["lfw/acc_mean"] and got["bin/lfw/acc_std"] == lfw["lfw/acc_std"]
    assert got["bin/lfw/auc"] == pytest.approx(lfw["lfw/auc"]) and got["bin/lfw/pairs"] == 40
    written = json.loads((tmp_path / "bin" / "metrics.json").read_text())
    assert written["bin/lfw/acc_mean"] == got["bin/lfw/acc_mean"]
    assert "bin/lfw/acc_mean" in json.loads((model / "metrics.json").read_text())  # the model's run gains it
    assert (tmp_path / "bin" / "roc_bin.png").stat().st_size > 1000
    assert "set (.bin)" in capsys.readouterr().out


def test_several_files_at_once_then_from_the_features_file(tiny_data, model, tmp_path):
    lfw_bin = lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "lfw.bin")
    one = _evaluate(tiny_data, tmp_path / "one", "bin", f"model={model}", f"protocol.paths=[{lfw_bin}]")
    data = pickle.loads(lfw_bin.read_bytes())  # the same pairs reversed, as a Python 2 file with a numpy array
    images = [im for k in range(len(data[1]) - 1, -1, -1) for im in data[0][2 * k:2 * k + 2]]
    cfp = write_py2_bin(tmp_path / "cfp_fp.bin", images, data[1][::-1], array=True)
    both = _evaluate(tiny_data, tmp_path / "both", "bin", f"model={model}", f"protocol.paths=[{lfw_bin},{cfp}]")
    assert both["bin/lfw/acc_mean"] == one["bin/lfw/acc_mean"] and both["bin/cfp_fp/pairs"] == 40
    assert both["bin/cfp_fp/auc"] == pytest.approx(both["bin/lfw/auc"])  # same scores, folds in another order
    again = _evaluate(tiny_data, tmp_path / "again", "bin", f"features={tmp_path / 'both' / 'features_bin.npz'}",
                      f"protocol.paths=[{lfw_bin},{cfp}]", "model=nowhere")
    assert again == pytest.approx(both)


def test_mirror_modes_and_bad_lists(tiny_data, model, tmp_path):
    lfw_bin = lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "lfw.bin")
    concat = _evaluate(tiny_data, tmp_path / "c", "bin", f"model={model}", f"protocol.paths={lfw_bin}", "mirror=concat")
    assert 0 <= concat["bin/lfw/acc_mean"] <= 1
    with pytest.raises(FacetrainError, match=r"no .bin files given; pass them as protocol.paths=\[/data/lfw.bin"):
        _evaluate(tiny_data, tmp_path / "e", "bin", f"model={model}", "protocol.paths=[]")
    with pytest.raises(FacetrainError, match=r"`five` needs lfw.bin, cfp_fp.bin, .* which lacks lfw.bin, cfp_fp.bin"):
        _evaluate(tiny_data, tmp_path / "e", "bin", f"model={model}")  # tiny_data has no faces_synth
    (tmp_path / "other").mkdir()
    twin = lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "other" / "lfw.bin")
    with pytest.raises(FacetrainError, match="two .bin files are named lfw"):
        _evaluate(tiny_data, tmp_path / "e", "bin", f"model={model}", f"protocol.paths=[{lfw_bin},{twin}]")


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


BAD_FILES = {
    "hostile": (lambda marker: pickle.dumps(([_System(f"touch {marker}"), b"x"], [True])),
                "refuses to load {posix}.system from this pickle; a .bin validation file holds only images and labels"),
    "odd": (lambda _: pickle.dumps(([b"x"] * 3, [True])), "3 images is an odd number"),
    "mismatch": (lambda _: pickle.dumps(([b"x"] * 4, [True])), "4 images make 2 pairs but issame has 1 labels"),
    "truncated": (lambda _: pickle.dumps(([b"x" * 100] * 4, [True, False]))[:-50], "cannot be read as a pickle"),
    "not-a-pickle": (lambda _: b"lfw\t10\t300\n", "cannot be read as a pickle"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_on_the_command_line_is_one_line(tmp_path, case):
    import os

    marker = tmp_path / "ran"
    content, message = BAD_FILES[case]
    (tmp_path / "agedb_30.bin").write_bytes(content(marker))
    proc = run_cli("eval", "bin", "protocol.paths=[agedb_30.bin]", "model=nowhere", "hydra.run.dir=out",
                   cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"facetrain: error: {tmp_path / 'agedb_30.bin'}: ")
    assert message.format(posix=os.system.__module__) in lines[0]
    assert not marker.exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_an_undecodable_image_names_its_index_and_file(tiny_data, model, tmp_path, workers):
    data = pickle.loads(lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "lfw.bin").read_bytes())
    data[0][3] = b"\xff\xd8\xff\xe0 not really a JPEG"
    bad = tmp_path / "vgg2_fp.bin"
    bad.write_bytes(pickle.dumps(data))
    with pytest.raises(FacetrainError, match=rf"^cannot read image 3 of {bad} \(.*\); remove or replace the file$"):
        _evaluate(tiny_data, tmp_path / "o", "bin", f"model={model}", f"protocol.paths={bad}", f"num_workers={workers}")
