"""`facetrain COMMAND [overrides]`: strip the command word and hand the rest to that command's Hydra app."""

from __future__ import annotations

import sys

USAGE = """usage: facetrain COMMAND [hydra overrides] [-m] [--cfg job] [--help]

commands:
  train              train a backbone + head + loss      facetrain train loss=l2softmax alpha=50
  eval PROTOCOL      score a model or features file      facetrain eval lfw model=runs/train/RUN
  data synth         write the synthetic demo data       facetrain data synth synth.seed=1
  data align         photos + 5 landmarks -> crops       facetrain data align align.src=photos align.landmarks=landmarks.txt align.out=crops
                     or raw photos (faces detected)      facetrain data align align.src=photos align.out=crops
  data pack          aligned tree -> data=packed shards  facetrain data pack pack.src=crops pack.out=faces.pack
  data convert       insightface rec pack <-> folders    facetrain data convert convert.src=faces_webface_112x112 convert.out=casia
  data outliers      a sub-center run's noisy images     facetrain data outliers model=runs/train/RUN
  data audit         duplicates, label noise, eval overlap facetrain data audit data=folder data.root=casia model=runs/train/RUN
  export             backbone -> TorchScript or ONNX     facetrain export model=runs/train/RUN format=onnx
  verify PHOTO PHOTO same person, at a calibrated FAR    facetrain verify a.jpg b.jpg model=runs/train/RUN
  report DIR...      table + plots of a sweep or runs    facetrain report runs/multirun/DATE eval=lfw

Sweeps: facetrain train -m loss=l2softmax alpha=8,16,32
Config groups and keys of a command: facetrain train --help
"""

_POSITIONAL_KEY = {"eval": "protocol", "data": "action"}  # `eval lfw` -> protocol=lfw


def _to_hydra_args(command: str, args: list[str]) -> list[str]:
    """`eval lfw -m model=a,b` -> `-m model=a,b protocol=lfw`: last, since argparse wants the overrides together."""
    args = [_quote_path_value(arg) for arg in args]
    if command == "report":
        return _report_args(args)
    if command == "verify":
        return _verify_args(args)
    key = _POSITIONAL_KEY.get(command)
    if key and args and not args[0].startswith("-") and "=" not in args[0]:
        return args[1:] + [f"{key}={args[0]}"]
    return args


_HYDRA_SPECIAL = set("=,[]{}()'\" \t")


def _quote_path_value(arg: str) -> str:
    """`model=runs/multirun/DATE/0_alpha=8,loss=l2softmax` -> `model='...'`: a sweep job's folder (or any existing
    path) whose name Hydra's override grammar would split at `=` or `,` passes whole, as `facetrain report` takes it."""
    from pathlib import Path

    key, sep, value = arg.partition("=")
    if (not sep or arg.startswith("-") or not key or _HYDRA_SPECIAL & set(key) or not _HYDRA_SPECIAL & set(value)
            or value[:1] in ("'", '"') or not Path(value).exists() or Path(arg).exists()):  # a whole path: report's
        return arg
    from facetrain.report.compose import quote

    return f"{key}={quote(value)}"


_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}  # Hydra flags followed by their value


def _report_args(args: list[str]) -> list[str]:
    """`report DIR1 DIR2 x=alpha` -> `x=alpha dirs=['DIR1','DIR2']`; a job folder (`0_alpha=16`) is a DIR when it exists."""
    from pathlib import Path

    from facetrain.report.compose import quote

    dirs, rest = [], []
    for i, arg in enumerate(args):
        flag_value = i > 0 and args[i - 1] in _VALUE_FLAGS
        is_dir = not flag_value and not arg.startswith("-") and ("=" not in arg or Path(arg).exists())
        (dirs if is_dir else rest).append(arg)
    return rest + ([f"dirs=[{','.join(map(quote, dirs))}]"] if dirs else [])


def _verify_args(args: list[str]) -> list[str]:
    """`verify a.jpg b.jpg far=1e-4` -> `far=1e-4 inputs=['a.jpg','b.jpg']` (a photo named `x=y.jpg` that exists is a photo)."""
    from pathlib import Path

    from facetrain.report.compose import quote

    photos, rest = [], []
    for i, arg in enumerate(args):
        flag_value = i > 0 and args[i - 1] in _VALUE_FLAGS
        is_photo = not flag_value and not arg.startswith("-") and ("=" not in arg or Path(arg).exists())
        (photos if is_photo else rest).append(arg)
    return rest + ([f"inputs=[{','.join(map(quote, photos))}]"] if photos else [])


_MODE_FLAGS = {"-m": "-m", "--multirun": "-m", "--cfg": "--cfg", "-c": "--cfg", "--info": "--info", "-i": "--info",
               "--shell-completion": "--shell-completion", "-sc": "--shell-completion"}  # Hydra runs one of these


def _one_mode(command: str, args: list[str]) -> None:
    """Hydra takes one of -m, --cfg, --info: say so in a line rather than with its traceback."""
    modes = sorted({_MODE_FLAGS[a] for i, a in enumerate(args)
                    if a in _MODE_FLAGS and not (i > 0 and args[i - 1] in _VALUE_FLAGS)})
    if len(modes) > 1:
        fix = (f"--cfg and --info show one run's config: drop -m and give one value per key (facetrain {command} "
               "--cfg job alpha=8)" if "-m" in modes else "give one of them")
        print(f"facetrain: error: {' and '.join(modes)} cannot go together; {fix}", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    from facetrain.commands import data_main, eval_main, export_main, report_main, train_main, verify_main

    apps = {"train": train_main, "eval": eval_main, "data": data_main, "export": export_main, "report": report_main,
            "verify": verify_main}
    command = argv[0]
    if command not in apps:
        print(f"facetrain: error: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
        raise SystemExit(2)
    _one_mode(command, argv[1:])
    sys.argv = [f"facetrain {command}"] + _to_hydra_args(command, argv[1:])
    from facetrain.config_errors import one_line_config_errors

    with one_line_config_errors(command):  # a mistyped key or option: one line, exit 2
        apps[command]()


if __name__ == "__main__":
    main()
