"""SGD's weight decay added in place before the step (no parameter-sized temporary) moves every number as
torch's own SGD does."""

from __future__ import annotations

import pytest
import torch

from facetrain.train.step import _decay_in_place


def _steps(make, in_place: bool, steps: int = 3):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(7, 5, generator=gen, requires_grad=True), torch.randn(5, generator=gen, requires_grad=True)]
    optimizer = make(params)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        with _decay_in_place(optimizer) if in_place else torch.enable_grad():
            optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.1, momentum=0.9,
                               weight_decay=5e-4),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=1e-2, maximize=True),
    lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=1e-2),
], ids=["sgd-groups", "nesterov", "maximize", "adamw"])
def test_decay_in_place_steps_bitwise_as_torch(make):
    (ref, ref_opt), (got, got_opt) = _steps(make, False), _steps(make, True)
    for a, b in zip(ref, got, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ref, got, strict=True):
        for key, value in ref_opt.state[a].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(got_opt.state[b][key]))
    assert [g["weight_decay"] for g in got_opt.param_groups] == [g["weight_decay"] for g in ref_opt.param_groups]


def test_the_decay_is_restored_when_the_step_fails():
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.ones(3)
    optimizer = torch.optim.SGD([p], lr=0.1, weight_decay=0.5)
    with pytest.raises(RuntimeError), _decay_in_place(optimizer):
        assert optimizer.param_groups[0]["weight_decay"] == 0.0
        assert torch.equal(p.grad, torch.full((3,), 1.5))  # grad + 0.5 * param, in place
        raise RuntimeError("step failed")
    assert optimizer.param_groups[0]["weight_decay"] == 0.5
