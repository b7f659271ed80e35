"""scripts/gpu_check.py (`make gpu-check`): every section of its JSON holds numbers or says why not, on the CPU."""

from __future__ import annotations

import json
import runpy

import pytest
from helpers import REPO

SECTIONS = {"host_syncs", "decode", "loop_overhead", "sharded_classifier", "compile"}
NUMBERS = {"host_syncs": "syncs_per_step", "decode": "images_per_s", "loop_overhead": "images_per_s",
           "sharded_classifier": "images_per_s", "compile": "images_per_s"}


# the smoke run of scripts/gpu_check.py takes ~8 s on 2 cores: CI runs it with the slow tests
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    script = runpy.run_path(str(REPO / "scripts" / "gpu_check.py"))
    printed = script["main"](["--smoke", "--out", str(out / "check.json"), "--data", str(out / "data")])
    return script, json.loads((out / "check.json").read_text()), printed


def test_smoke_fills_every_section_with_numbers_or_a_reason(smoke):
    _, results, returned = smoke
    assert results == json.loads(json.dumps(returned))  # the file is what the run returned
    assert results["smoke"] is True and set(results["sections"]) == SECTIONS
    assert results["setup"]["data"]["train_images"] > 0
    for section, entries in results["sections"].items():
        assert entries, section
        for entry in entries:
            if entry["status"] == "ok":
                assert entry[NUMBERS[section]] > 0, entry
            else:
                assert entry["status"] == "skipped" and entry["reason"], entry
    ran = {s: [e for e in entries if e["status"] == "ok"] for s, entries in results["sections"].items()}
    assert len(ran["loop_overhead"]) == 2 and ran["loop_overhead"][1]["overhead"] > 0  # bench and the real loop
    assert len(ran["sharded_classifier"]) == 4 and len(ran["decode"]) == 2  # GPU decode: skipped here
    assert {e["reason"][:3] for e in results["sections"]["host_syncs"]} == {"n/a"}  # CUDA only


def test_one_failure_is_recorded_and_the_rest_goes_on(smoke, tmp_path):
    script, _, _ = smoke
    args = script["_arguments"](["--smoke", "--out", str(tmp_path / "c.json")])
    check = script["Check"](args, script["Plan"](True, 0))

    def out_of_memory():
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB")

    oom = check.measure("sharded_classifier", "4M classes", 0, out_of_memory)
    fine = check.measure("sharded_classifier", "1M classes", 0, lambda: {"images_per_s": 1.0})
    assert oom["status"] == "oom" and "8.00 GiB" in oom["reason"] and fine["status"] == "ok"
    assert json.loads((tmp_path / "c.json").read_text())["sections"]["sharded_classifier"][1]["status"] == "ok"


def test_the_deadline_skips_what_no_longer_fits_and_says_so(smoke, tmp_path):
    script, _, _ = smoke
    args = script["_arguments"](["--smoke", "--budget-s", "5", "--out", str(tmp_path / "c.json")])
    check = script["Check"](args, script["Plan"](True, 0))
    ran = []
    entry = check.measure("compile", "torch.compile", 60, lambda: ran.append(1) or {})
    assert entry["status"] == "skipped" and "budget" in entry["reason"] and not ran
