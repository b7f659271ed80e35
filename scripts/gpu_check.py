"""One command for a GPU day: the speed and memory questions docs/scale.md leaves open, measured in one run.

    make gpu-check                                         # = python scripts/gpu_check.py --out runs/gpu_check.json
    python scripts/gpu_check.py --budget-s 450 --out runs/gpu_check.json
    python scripts/gpu_check.py --smoke --out /tmp/smoke.json   # every section on the CPU at tiny sizes (the test)

Sections, each measurement in its own try (an OOM or error is recorded and the rest goes on):

- loop_overhead: `facetrain.train.train(cfg)` (loader, mirroring, hooks) against scripts/bench_train.py's bare
  `train_step` on the same model: iresnet50 and iresnet100 + ArcFace, bf16, channels_last, batch 128 and 512,
  on a small synthetic 112x112 set written once at the start. The loop's rate is steady-state: two runs of
  W and W+S iterations after a warm-up run, S * batch / (difference of their times), so worker start-up,
  cuDNN autotuning and the final checkpoint cancel. overhead = bench images/s / loop images/s.
- sharded_classifier: one process holding 1M and 4M classes x 512 (shard_classifier=true has one shard on one
  GPU: this is one rank's block of an N-GPU run of N times as many identities), loss.sample_rate 0.1 and 1.
- host_syncs: warnings `torch.cuda.set_sync_debug_mode("warn")` raises per train_step (CUDA only; the CPU count
  is tests/test_host_syncs.py's).
- decode: torchvision.io.decode_jpeg on the GPU (a batch) against one CPU core (decode_jpeg, and Pillow as
  facetrain's loader workers decode), on the synthetic JPEGs.
- compile: bench_train eager against --compile (compile time included in warmup_s).

A global deadline (--budget-s) skips a measurement whose estimated cost no longer fits, saying so. The JSON
(--out) is rewritten after every measurement, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from hydra import compose, initialize_config_module
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
bench_train = importlib.import_module("bench_train")  # a sibling script, not a package

from facetrain.data.images.image_io import decode_image  # noqa: E402
from facetrain.data.synth import SynthSpec  # noqa: E402
from facetrain.data.synth.trees import write_synthetic_data  # noqa: E402
from facetrain.train import build_state, train, train_step, trainer  # noqa: E402
from facetrain.train.hooks import Hook  # noqa: E402

SECTIONS = ("host_syncs", "decode", "loop_overhead", "sharded_classifier", "compile")
EXPECTED_SYNCS = {"default": 1, "sampled": 2}  # pinned on the CPU by tests/test_host_syncs.py


class Skip(Exception):
    """A measurement that does not apply here (the reason is its message)."""


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpu_check.json", help="the JSON results")
    parser.add_argument("--data", default="runs/gpu_check_data", help="the synthetic set (written once, reused)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip what would end after this many seconds")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script, measures nothing")
    parser.add_argument("--workers", type=int, default=None, help="loader and synth workers (default: cores - 2)")
    return parser.parse_args(argv)


class Plan:
    """The sizes of one run: the GPU day's, or --smoke's tiny CPU ones."""

    def __init__(self, smoke: bool, workers: int):
        self.smoke, self.workers = smoke, workers
        self.device = "cpu" if smoke else "cuda"
        self.precision = "auto" if smoke else "bf16"
        self.steps, self.warmup = (2, 1) if smoke else (20, 3)  # bench_train's timed and warm-up steps
        self.loop_steps = 2 if smoke else 30  # the loop's timed window (it starts after the loader's backlog)
        tiny = ["backbone.channels=[4,8,8,16]", "embedding_dim=16"]
        self.loop_models = [("small_cnn", tiny, 8)] if smoke else [
            (backbone, [], batch) for backbone in ("iresnet50", "iresnet100") for batch in (128, 512)]
        self.shard_model = ("small_cnn", tiny, 8) if smoke else ("iresnet50", [], 512)
        self.shard_classes = (100, 400) if smoke else (1_000_000, 4_000_000)
        self.sample_rates = (0.1, 1.0)
        self.compile_model = ("small_cnn", tiny, 8) if smoke else ("iresnet100", [], 128)
        self.sync_model = ("small_cnn", tiny, 8) if smoke else ("iresnet50", [], 128)
        self.decode_images = 16 if smoke else 512
        self.spec = SynthSpec(seed=0, image_size=(112, 112), train_identities=6 if smoke else 300,
                              train_min_images=4 if smoke else 15, train_max_images=6 if smoke else 25,
                              lfw_folds=10, lfw_pairs_per_fold=2, lfw_identities_per_fold=3, lfw_max_images=4)

    def estimate_s(self, kind: str, **k) -> float:
        """A generous guess of a measurement's seconds on an H100 (0 in smoke runs: they always run)."""
        if self.smoke:
            return 0.0
        if kind == "classifier":
            return 15 + 10 * k["classes"] / 1e6  # the weights' init on the host dominates
        return {"syncs": 10, "decode": 10, "bench": 15, "loop": 30, "eager": 15, "compiled": 180}[kind]


class Check:
    """Runs measurements under one deadline and records each as ok / oom / error / skipped."""

    def __init__(self, args: argparse.Namespace, plan: Plan):
        self.args, self.plan = args, plan
        self.t0 = time.perf_counter()
        self.out = Path(args.out)
        self.results: dict = {
            "smoke": plan.smoke, "device": _device_name(plan.device), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "workers": plan.workers, "budget_s": args.budget_s,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "setup": {},
            "sections": {name: [] for name in SECTIONS},
        }

    def left_s(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def measure(self, section: str, name: str, estimate_s: float, fn: Callable[[], dict]) -> dict:
        entry: dict = {"name": name}
        if self.left_s() < estimate_s:
            entry |= {"status": "skipped", "reason": f"budget: {self.left_s():.0f} s of --budget-s "
                      f"{self.args.budget_s:.0f} left, this needs ~{estimate_s:.0f} s"}
        else:
            start = time.perf_counter()
            try:
                entry |= fn()
                entry["status"] = "ok"
            except Skip as skip:
                entry |= {"status": "skipped", "reason": str(skip)}
            except Exception as error:  # one failure is recorded; the rest goes on
                oom = isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()
                where = traceback.extract_tb(error.__traceback__)[-1]
                entry |= {"status": "oom" if oom else "error",
                          "reason": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
                                    if str(error).strip() else type(error).__name__,
                          "where": f"{Path(where.filename).name}:{where.lineno}"}
            finally:
                _free_memory()
            entry["seconds"] = round(time.perf_counter() - start, 2)
        self.results["sections"][section].append(entry)
        print(f"{section:<19} {name:<52} {entry['status']:<7} {entry.get('summary') or entry.get('reason', '')}",
              flush=True)
        self.write()
        return entry

    def write(self) -> None:
        self.results["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results, indent=2) + "\n")
        tmp.replace(self.out)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else f"CPU ({platform.processor() or platform.machine()})"


def _compose(overrides: list[str]):
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose("train", overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def _bench(plan: Plan, backbone: str, extra: list[str], batch: int, classes: int, *flags: str) -> dict:
    """scripts/bench_train.py's bench(), in this process."""
    argv = ["--backbone", backbone, "--loss", "arcface", "--batch", str(batch), "--classes", str(classes),
            "--precision", plan.precision, "--channels-last", "--steps", str(plan.steps), "--warmup",
            str(plan.warmup), "--device", plan.device, *flags, *extra]
    with contextlib.redirect_stdout(io.StringIO()) as printed:  # its line goes into the JSON, not the table
        r = bench_train.bench(bench_train.arguments(argv))
    r["line"] = printed.getvalue().strip()
    r["summary"] = (f"{r['images_per_s']:,.0f} img/s, MFU {100 * r['mfu']:.1f}%, {r['gflop_per_image']:.2f} GFLOP/img, "
                    f"peak {r['peak_memory_gib']:.2f} GiB ({r['memory_kind']})")
    return r


# --- setup -----------------------------------------------------------------------------------------------------


def write_data(plan: Plan, root: Path) -> dict:
    """The synthetic 112x112 set under root/synth (casia/ and a minimal lfw/; no other evaluation trees)."""
    t = time.perf_counter()
    summary = write_synthetic_data(root / "synth", plan.spec, workers=max(1, plan.workers))
    return {"train_images": summary["train_images"], "train_identities": summary["train_identities"],
            "reused": bool(summary.get("reused")), "seconds": round(time.perf_counter() - t, 1),
            "path": str(root / "synth")}


# --- host syncs --------------------------------------------------------------------------------------------------


def host_syncs(plan: Plan, overrides: list[str], steps: int = 3) -> dict:
    """Warnings of torch.cuda.set_sync_debug_mode("warn") per train_step (after one untimed step)."""
    if plan.device != "cuda":
        raise Skip("n/a on CPU: set_sync_debug_mode needs CUDA (tests/test_host_syncs.py counts them on the CPU)")
    backbone, extra, batch = plan.sync_model
    cfg = _compose([f"backbone={backbone}", "run_dir=.", "device=cuda", f"precision={plan.precision}",
                    "channels_last=true", f"batch_size={batch}", *extra, *overrides])
    classes = 1000
    state = build_state(cfg, classes, torch.device("cuda"), Path(tempfile.mkdtemp()))
    state.network.train()
    h, w = state.model.input_size
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=g).cuda(),
                torch.randint(0, classes, (batch,), generator=g).cuda()) for _ in range(steps + 1)]
    train_step(state, *batches[0], hflip=True)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for images, labels in batches[1:]:
                train_step(state, images, labels, hflip=True)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    per_step = len(syncs) / steps
    return {"syncs_per_step": per_step, "steps": steps, "overrides": overrides,
            "summary": f"{per_step:g} syncs/step"}


# --- decode ------------------------------------------------------------------------------------------------------


def _decode_jpeg():
    """torchvision's decode_jpeg, without its deprecation notice (TorchCodec supersedes it; this only times it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import decode_jpeg
    return decode_jpeg


def _jpegs(root: Path, n: int) -> list[Path]:
    files = sorted((root / "synth" / "casia").rglob("*.jpg"))[:n]
    if not files:
        raise Skip(f"no JPEGs under {root}/synth/casia (the synthetic set failed)")
    return files


def decode_cpu(root: Path, n: int, how: str) -> dict:
    """Images/s of one CPU core: torchvision's decode_jpeg, or Pillow + fit (what facetrain's loader workers run)."""
    decode_jpeg = _decode_jpeg()
    files = _jpegs(root, n)
    raw = [f.read_bytes() for f in files]
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in raw]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.perf_counter()
        if how == "decode_jpeg":
            for d in data:
                decode_jpeg(d)
        else:
            for b in raw:
                decode_image(b, (112, 112))
        seconds = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    rate = len(files) / seconds
    return {"images": len(files), "images_per_s": rate, "summary": f"{rate:,.0f} img/s on one core"}


def decode_gpu(root: Path, n: int, cpu_rate: float | None, reps: int = 5) -> dict:
    """Images/s of torchvision's batched nvJPEG decode (decode_jpeg(list, device='cuda')), best of `reps`."""
    if not torch.cuda.is_available():
        raise Skip("n/a on CPU: decode_jpeg(device='cuda') needs CUDA")
    decode_jpeg = _decode_jpeg()
    data = [torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8) for f in _jpegs(root, n)]
    decode_jpeg(data, device="cuda")  # warm-up: nvJPEG handles, allocations
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        decode_jpeg(data, device="cuda")
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    rate = len(data) / best
    cores = rate / cpu_rate if cpu_rate else None
    return {"images": len(data), "images_per_s": rate, "cpu_cores_to_match": cores,
            "summary": f"{rate:,.0f} img/s" + (f" (= {cores:.1f} CPU cores of Pillow decode)" if cores else "")}


# --- the loop against the bare step --------------------------------------------------------------------------------


class _WindowTimer(Hook):
    """Times the loop between the end of iteration `first` and the end of iteration `last` (a device sync at both
    ends only), before the other hooks run at those iterations (so the final checkpoint lies outside)."""

    def __init__(self, first: int, last: int):
        self.first, self.last, self.times = first, last, {}

    def after_step(self, state) -> None:
        if state.iteration in (self.first, self.last):
            if state.device.type == "cuda":
                torch.cuda.synchronize(state.device)
            self.times[state.iteration] = time.perf_counter()


@contextlib.contextmanager
def _timed_window(first: int, last: int):
    """facetrain.train.train with the window timer as its first hook (the loop's own hooks all run as usual)."""
    timer, original = _WindowTimer(first, last), trainer.default_hooks
    trainer.default_hooks = lambda cfg: [timer, *original(cfg)]
    try:
        yield timer
    finally:
        trainer.default_hooks = original


def loop_rate(plan: Plan, root: Path, work: Path, backbone: str, extra: list[str], batch: int) -> dict:
    """Images/s of facetrain.train.train over a window of its iterations. The window starts once the loader's
    prefetched batches (2 per worker) are used up, so it measures the workers' steady rate, not their backlog."""
    first = plan.warmup + 2 * plan.workers
    last = first + plan.loop_steps
    run_dir = work / f"loop_{backbone}_{batch}"
    cfg = _compose([f"backbone={backbone}", "loss=arcface", f"paths.data={root}", f"run_dir={run_dir}",
                    f"device={plan.device}", f"precision={plan.precision}", "channels_last=true",
                    f"batch_size={batch}", f"iterations={last}", "log_every=5", f"checkpoint_every={last}",
                    "val.every=0", "progress=false", "data.generate_if_missing=false",
                    f"data.num_workers={plan.workers}", *extra])
    try:
        with _timed_window(first, last) as timer:
            metrics = train(cfg)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    rate = plan.loop_steps * batch / (timer.times[last] - timer.times[first])
    return {"images_per_s": rate, "metrics_images_per_s": metrics["train/images_per_s"], "window": [first, last],
            "classes": metrics["train/num_classes"], "workers": plan.workers}


def loop_overhead(check: Check, plan: Plan, root: Path, work: Path, classes: int) -> None:
    for backbone, extra, batch in plan.loop_models:
        label = f"{backbone} arcface batch {batch}"
        bench = check.measure("loop_overhead", f"{label}: bench_train (bare step)", plan.estimate_s("bench"),
                              lambda b=backbone, e=extra, n=batch: _bench(plan, b, e, n, classes))

        def loop(bench=bench, backbone=backbone, extra=extra, batch=batch) -> dict:
            r = loop_rate(plan, root, work, backbone, extra, batch)
            if bench["status"] == "ok":
                r["overhead"] = bench["images_per_s"] / r["images_per_s"]
                r["mfu"] = bench["mfu"] / r["overhead"]
            r["summary"] = (f"{r['images_per_s']:,.0f} img/s over iterations {r['window'][0]}-{r['window'][1]} "
                            f"({r['metrics_images_per_s']:,.0f} in metrics.json: the whole run)"
                            + (f", overhead x{r['overhead']:.2f}, MFU {100 * r['mfu']:.1f}%" if "overhead" in r else ""))
            return r

        check.measure("loop_overhead", f"{label}: facetrain train (loader, flip, hooks)", plan.estimate_s("loop"), loop)


# --- main ----------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    workers = args.workers if args.workers is not None else (0 if args.smoke else max(1, (os.cpu_count() or 2) - 2))
    plan = Plan(args.smoke, workers)
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run it on the GPU machine, or pass --smoke to check the script "
                 "on the CPU")
    check = Check(args, plan)
    root = Path(args.data).resolve()
    print(f"gpu_check: {check.results['device']}, torch {torch.__version__}, budget {args.budget_s:.0f} s"
          + (" (smoke: tiny CPU sizes, the numbers mean nothing)" if plan.smoke else ""), flush=True)
    print(f"{'section':<19} {'measurement':<52} {'status':<7} result", flush=True)
    try:
        check.results["setup"]["data"] = write_data(plan, root)
    except Exception as error:
        check.results["setup"]["data"] = {"status": "error", "reason": f"{type(error).__name__}: {error}"}
    check.write()
    classes = check.results["setup"]["data"].get("train_identities", plan.spec.train_identities)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        for name, overrides in (("default", []), ("sampled", ["loss=arcface", "loss.sample_rate=0.1"])):
            entry = check.measure("host_syncs", f"{name}: {' '.join(overrides) or 'softmax'}, bf16, hflip",
                                  plan.estimate_s("syncs"), lambda o=overrides: host_syncs(plan, o))
            entry["expected_from_cpu_count"] = EXPECTED_SYNCS[name]
        cpu = [check.measure("decode", f"CPU {how}, 1 core, {plan.decode_images} JPEGs 112x112",
                             plan.estimate_s("decode"), lambda h=how: decode_cpu(root, plan.decode_images, h))
               for how in ("decode_jpeg", "Pillow + fit (loader workers)")]
        pillow = cpu[1].get("images_per_s")
        check.measure("decode", f"GPU decode_jpeg, batch of {plan.decode_images}", plan.estimate_s("decode"),
                      lambda: decode_gpu(root, plan.decode_images, pillow))
        loop_overhead(check, plan, root, work, classes)
        backbone, extra, batch = plan.shard_model
        for n in plan.shard_classes:
            for rate in plan.sample_rates:
                check.measure("sharded_classifier", f"{backbone} batch {batch}, {n:,} classes, sample_rate {rate}",
                              plan.estimate_s("classifier", classes=n),
                              lambda n=n, rate=rate: _bench(plan, backbone, extra, batch, n, "shard_classifier=true",
                                                            f"loss.sample_rate={rate}"))
        backbone, extra, batch = plan.compile_model
        eager = check.measure("compile", f"{backbone} arcface batch {batch}: eager", plan.estimate_s("eager"),
                              lambda: _bench(plan, backbone, extra, batch, classes))

        def compiled() -> dict:
            if plan.smoke:
                raise Skip("smoke: inductor's CPU build takes ~45 s here; the eager row checks the section")
            r = _bench(plan, backbone, extra, batch, classes, "--compile")
            if eager["status"] == "ok":
                r["speedup"] = r["images_per_s"] / eager["images_per_s"]
                r["summary"] += f", x{r['speedup']:.2f} of eager, warm-up (compilation) {r['warmup_s']:.0f} s"
            return r

        check.measure("compile", f"{backbone} arcface batch {batch}: torch.compile", plan.estimate_s("compiled"),
                      compiled)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check.write()
    print(f"gpu_check: {check.results['elapsed_s']:.0f} s; results in {check.out}", flush=True)
    return check.results


def main(argv: list[str] | None = None) -> dict:
    return run(_arguments(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
