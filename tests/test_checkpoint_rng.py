"""A checkpoint's CUDA RNG is the training device's own state, so a run saved with 8 GPUs visible resumes on 1."""

import pytest
import torch
from torch import nn

from facetrain.run import checkpoint
from facetrain.run.checkpoint import capture_state, restore_state


class FakeCuda:
    """`gpus` devices: one generator state per device, set_rng_state refusing a device that is not there."""

    def __init__(self, gpus: int, current: int = 0):
        self.states = {i: torch.full((8,), i, dtype=torch.uint8) for i in range(gpus)}
        self.gpus, self.current = gpus, current

    def _index(self, device) -> int:
        if device in (None, "cuda"):
            return self.current
        index = torch.device(device).index if not isinstance(device, int) else device
        return self.current if index is None else index

    def get_rng_state(self, device="cuda"):
        return self.states[self._index(device)].clone()

    def get_rng_state_all(self):
        return [self.states[i].clone() for i in range(self.gpus)]

    def set_rng_state(self, state, device="cuda"):
        index = self._index(device)
        if index >= self.gpus:
            raise IndexError(f"device {index} of {self.gpus}")  # what torch.cuda raises for a missing GPU
        self.states[index] = state.clone()

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.gpus)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        for module in (torch.cuda, torch.cuda.random):  # set_rng_state_all calls the module's own name
            monkeypatch.setattr(module, "get_rng_state", self.get_rng_state)
            monkeypatch.setattr(module, "get_rng_state_all", self.get_rng_state_all)
            monkeypatch.setattr(module, "set_rng_state", self.set_rng_state)
        return self


def _saved(train_cfg, device=None) -> dict:
    part = nn.Linear(2, 2)
    return capture_state({"backbone": part}, {}, 3, train_cfg(), 5, device=device)


def test_a_checkpoint_holds_only_the_training_devices_cuda_state(monkeypatch, train_cfg):
    FakeCuda(8, current=0).install(monkeypatch)
    saved = _saved(train_cfg, torch.device("cuda", 3))
    assert torch.equal(saved["rng"]["cuda"], torch.full((8,), 3, dtype=torch.uint8))  # device 3's, and only it
    assert "cuda" not in _saved(train_cfg, torch.device("cpu"))["rng"]  # a CPU run uses no CUDA generator


def test_a_checkpoint_of_eight_gpus_resumes_on_one(monkeypatch, train_cfg):
    saved = {"model": {"backbone": nn.Linear(2, 2).state_dict()}, "iteration": 3,
             "rng": {"torch": torch.get_rng_state()}}
    eight = FakeCuda(8).install(monkeypatch)
    saved["rng"]["cuda"] = [torch.full((8,), 10 + i, dtype=torch.uint8) for i in range(8)]  # the old format
    one = FakeCuda(1).install(monkeypatch)
    assert restore_state(saved, {"backbone": nn.Linear(2, 2)}, {}, device=torch.device("cuda", 0)) == 3
    assert torch.equal(one.states[0], torch.full((8,), 10, dtype=torch.uint8))  # its own device's entry
    assert eight.gpus == 8
    # a new checkpoint (one state) goes to whichever device the resuming rank trains on
    two = FakeCuda(2).install(monkeypatch)
    saved["rng"]["cuda"] = torch.full((8,), 42, dtype=torch.uint8)
    restore_state(saved, {"backbone": nn.Linear(2, 2)}, {}, device=torch.device("cuda", 1))
    assert torch.equal(two.states[1], saved["rng"]["cuda"]) and torch.equal(two.states[0], torch.zeros(8, dtype=torch.uint8))


def test_an_old_checkpoint_restores_each_device_as_before(monkeypatch):
    fake = FakeCuda(2, current=1).install(monkeypatch)
    states = [torch.full((8,), 20 + i, dtype=torch.uint8) for i in range(2)]
    checkpoint._restore_cuda_rng(states, torch.device("cuda"))  # `cuda` = the current device, 1
    assert torch.equal(fake.states[1], states[1]) and torch.equal(fake.states[0], torch.zeros(8, dtype=torch.uint8))


@pytest.mark.parametrize("device", [None, torch.device("cpu")])
def test_no_cuda_state_without_cuda(device, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint._restore_cuda_rng(torch.zeros(8, dtype=torch.uint8), device)  # nothing to restore onto: no error
