"""AdaFace, MagFace and CurricularFace in training: their running statistics travel in the checkpoint (a resumed
run continues them exactly), and a short run at the paper's defaults learns the tiny synthetic twin. Every loss
config's 80-iteration run is `test_losses_training.test_every_loss_learns` (slow)."""

import pytest
import torch
from test_losses_training import LEARN, _evaluate

from facetrain.train import train

STATS = {"adaface": ("batch_mean", "batch_std"), "curricularface": ("t",)}
# a schedule that does not depend on the run's length, so a 2-iteration run is the first half of a 4-iteration one
FIXED_SCHEDULE = ["warmup.iterations=0", "schedule.milestones=[3]"]


def _loss_state(run_dir) -> dict:
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["iteration"] == 4
    return saved["model"]["loss"]


@pytest.mark.parametrize("loss", ["adaface", pytest.param("curricularface", marks=pytest.mark.slow)])
def test_running_statistics_are_checkpointed_and_resume_exactly(loss, train_cfg, tmp_path):
    train(train_cfg(f"loss={loss}", *FIXED_SCHEDULE, run_dir=tmp_path / "straight"))  # 4 iterations
    train(train_cfg(f"loss={loss}", *FIXED_SCHEDULE, "iterations=2", run_dir=tmp_path / "resumed"))
    train(train_cfg(f"loss={loss}", *FIXED_SCHEDULE, "resume=true", run_dir=tmp_path / "resumed"))
    straight, resumed = _loss_state(tmp_path / "straight"), _loss_state(tmp_path / "resumed")
    assert straight.keys() == resumed.keys() and set(STATS[loss]) <= set(straight)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    start = {"batch_mean": 20.0, "batch_std": 100.0, "t": 0.0}  # the authors' initial values
    assert all(float(straight[k]) != start[k] for k in STATS[loss])


def test_adaface_learns_in_a_short_run(train_cfg, tmp_path):
    """25 iterations at the defaults (s 64, m 0.4, h 0.333): training accuracy 0.15 -> 0.96 (6 identities)."""
    cfg = train_cfg("loss=adaface", *LEARN, "iterations=25", "checkpoint_every=25", run_dir=tmp_path / "r")
    train(cfg)
    acc, _ = _evaluate(cfg, tmp_path / "r" / "checkpoints" / "last.pt")
    assert acc >= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["adaface", "magface", "curricularface"])
def test_a_sharded_run_with_class_sampling_resumes_as_one_process(loss, tiny_data, tmp_path):
    """torchrun: 2 ranks, each half of the class weights and class sampling, to iteration 2, then 1 process to 4:
    the weights and running statistics one process reaches in 4 iterations."""
    from test_distributed import _compose, _overrides, assert_same_weights, torchrun

    sharded = [f"loss={loss}", "loss.scale=16", "shard_classifier=true", "loss.sample_rate=0.5"]
    train(_compose(_overrides(tiny_data, tmp_path / "full", *sharded)))
    torchrun(*_overrides(tiny_data, tmp_path / "two_then_one", *sharded, "iterations=2"), cwd=tmp_path)
    train(_compose(_overrides(tiny_data, tmp_path / "two_then_one", *sharded, "resume=true")))
    assert_same_weights(tmp_path / "full", tmp_path / "two_then_one", 4)
