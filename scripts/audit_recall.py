"""How much of each planted fault `facetrain data audit` finds: recall and precision per kind on a synthetic tree.

Steps (each a plain `facetrain` command, printed before it runs):
1. a model of synthetic people it never saw: L2-softmax face_resnet_mini (the CPU demo's network) trained in two
   stages on clean synthetic sets of other people (or `--model RUN`, e.g. one trained before): 12,000 iterations
   of 128 images on 4,000 people, then, from that backbone (`init_from`), 10,000 iterations on 10,000 more people.
   The face checks need a model that tells unseen people apart: the demo's 2,400 iterations on 600 people (89-91%
   on the synthetic LFW pairs) found none of the merged identities; the second stage mostly raises the precision
   of evaluation overlap (docs/data.md);
2. a synthetic tree with `synth.faults` of every kind (ground truth in <data>/synth/faults/casia.tsv);
3. `facetrain data audit` of it with that model and the LFW tree and lfw.bin as evaluation sets;
4. the table: for each kind, the share of planted faults found (recall) and of findings that are planted
   faults (precision).

    python scripts/audit_recall.py --out runs/audit_recall            # trains the model first (~1 h 15 min, 2 cores)
    python scripts/audit_recall.py --out runs/audit_recall --model runs/audit_recall/model2/checkpoints/best.pt
    python scripts/audit_recall.py --out runs/audit_recall8 --tree-seed 8 --model runs/audit_recall/model2/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facetrain.data.synth.faults import read_faults

SYNTH = ("synth.image_size=[56,48]", "synth.blufr_trials=0", "synth.ytf_splits=0", "synth.ijba_splits=0",
         "synth.ijbc_subjects=0")
MODEL = ("backbone=face_resnet_mini", "channels_last=true", "data.num_workers=1", "loss=l2softmax", "input_size=[56,48]",
         "embedding_dim=128", "batch_size=128", "progress=false")
STAGES = "11:4000:12000,13:10000:10000"  # seed:people:iterations of each training stage of the model


def facetrain(*args: str) -> None:
    print(f"\n$ facetrain {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "facetrain.cli", *args], check=True)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _components(pairs: list[tuple[str, str]]) -> dict[str, int]:
    names = sorted({n for p in pairs for n in p})
    pos = {n: i for i, n in enumerate(names)}
    graph = coo_matrix(([1] * len(pairs), ([pos[a] for a, _ in pairs], [pos[b] for _, b in pairs])),
                       shape=(len(names), len(names)))
    return dict(zip(names, connected_components(graph, directed=False)[1].tolist(), strict=True))


def _score(found: set, truth: set, correct) -> tuple[int, int, int, int]:
    """(truth found, truth, findings correct, findings)."""
    return sum(correct(t, found) for t in truth), len(truth), sum(correct(f, truth) for f in found), len(found)


def duplicate_scores(faults: list[dict], audit: Path) -> dict[str, tuple]:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in _rows(audit / "duplicates.csv"):
        groups[(row["kind"], row["group"])].append(row["image"])
    truth_pairs = {k: [(r["item"], r["source"]) for r in faults if r["kind"] == f"{k}_duplicate"]
                   for k in ("exact", "near")}
    every = _components(truth_pairs["exact"] + truth_pairs["near"])  # a copy's copies are one photo too
    out = {}
    for kind, pairs in truth_pairs.items():
        member = {img: g for (k, g), imgs in groups.items() if k == kind for img in imgs}
        found_pairs = {(imgs[0], i) for (k, _), imgs in groups.items() if k == kind for i in imgs[1:]}
        hit = sum(a in member and member.get(b) == member[a] for a, b in pairs)
        right = sum(a in every and every.get(b) == every[a] for a, b in found_pairs)
        out[f"{kind}_duplicate"] = (hit, len(pairs), right, len(found_pairs))
    return out


def _bin_people(lfw: Path, bin_file: Path) -> set[str]:
    """The LFW people with at least one image in lfw.bin (matched by bytes)."""
    from facetrain.eval.protocols.bin import read_bin

    digests = {hashlib.sha1(b).hexdigest() for b in read_bin(bin_file).images}
    return {p.parent.name for p in lfw.glob("*/*.jpg") if hashlib.sha1(p.read_bytes()).hexdigest() in digests}


def label_scores(faults: list[dict], audit: Path, lfw: Path, bin_file: Path) -> dict[str, tuple]:
    merged_truth = {frozenset((r["item"], r["source"])) for r in faults if r["kind"] == "merged_identity"}
    merged_found = {frozenset((r["identity_a"], r["identity_b"])) for r in _rows(audit / "merged_identities.csv")}
    mis_truth = {r["item"] for r in faults if r["kind"] == "mislabeled"}
    mis_rows = _rows(audit / "mislabeled.csv")
    mis_found = {r["image"] for r in mis_rows}
    # an image of a person under two names that the audit files under the other name is right about the person
    # (it is evidence of that merge): counted correct, though no planted mislabeled image
    twins = {r["image"] for r in mis_rows if frozenset((r["identity"], r["closest_identity"])) in merged_truth}
    overlap = [r for r in faults if r["kind"] == "eval_overlap"]
    rows = _rows(audit / "eval_overlap.csv")
    out = {"merged_identity": _score(merged_found, merged_truth, lambda x, s: x in s),
           "mislabeled": _score(mis_found, mis_truth, lambda x, s: x in s or x in twins),
           "eval_overlap (LFW tree)": _score({r["identity"] for r in rows if r["eval_set"] == lfw.name},
                                             {r["item"] for r in overlap}, lambda x, s: x in s)}
    in_bin = _bin_people(lfw, bin_file)
    out["eval_overlap (lfw.bin)"] = _score({r["identity"] for r in rows if r["eval_set"] == bin_file.name},
                                           {r["item"] for r in overlap if r["source"] in in_bin}, lambda x, s: x in s)
    return out


def table(scores: dict[str, tuple]) -> str:
    lines = ["| fault | planted | found | recall | findings | precision |", "|---|---|---|---|---|---|"]
    for kind, (hit, truth, right, found) in scores.items():
        recall = f"{hit / truth:.1%}" if truth else "-"
        precision = f"{right / found:.1%}" if found else "-"
        lines.append(f"| {kind} | {truth} | {hit} | {recall} | {found} | {precision} |")
    return "\n".join(lines)


def train_model(out: Path, stages: list[tuple[int, int, int]]) -> Path:
    """Train the audit's model stage by stage (seed, people, iterations), each on its own synthetic people (never
    the audited tree's), each from the last stage's best backbone; return the last stage's best.pt."""
    model = None
    for k, (seed, people, iterations) in enumerate(stages, 1):
        data, run = out / f"model_data{k}", out / f"model{k}"
        facetrain("data", "synth", f"paths.data={data}", f"synth.seed={seed}", f"synth.train_identities={people}",
                  "synth.insightface=false", *SYNTH)
        facetrain("train", *MODEL, f"paths.data={data}", f"iterations={iterations}",
                  f"val.every={max(1, iterations // 4)}", f"hydra.run.dir={run}",
                  *([f"init_from={model}"] if model else []))
        model = run / "checkpoints" / "best.pt"
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/audit_recall"))
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained run (default: train one into OUT/model1, OUT/model2, ...)")
    parser.add_argument("--stages", default=STAGES,
                        help="the model's training stages, SEED:PEOPLE:ITERATIONS each; each starts from the last")
    parser.add_argument("--faults", type=int, default=40, help="planted faults of each kind")
    parser.add_argument("--identities", type=int, default=500, help="people of the audited tree")
    parser.add_argument("--tree-seed", type=int, default=7, help="seed of the audited tree (not a stage's seed)")
    args = parser.parse_args()
    out = args.out.resolve()
    model = args.model or train_model(out, [tuple(map(int, st.split(":"))) for st in args.stages.split(",")])
    n = args.faults
    data = out / "faulty"
    if (data / "synth" / "faults" / "casia.tsv").is_file():  # the tree follows from its seed: made once
        made = json.loads((data / "synth" / "synth.json").read_text())["spec"]["seed"]
        if made != args.tree_seed:
            sys.exit(f"{data} holds the tree of seed {made}, not {args.tree_seed}: give another --out")
        print(f"\nreusing the faulty tree {data / 'synth' / 'casia'}")
    else:
        facetrain("data", "synth", f"paths.data={data}", f"synth.seed={args.tree_seed}",
                  f"synth.train_identities={args.identities}", "synth.train_max_images=30", *SYNTH,
                  *(f"synth.faults.{k}={n}" for k in ("exact_duplicates", "near_duplicates", "merged_identities",
                                                      "mislabeled", "eval_overlap")))
    audit = out / "audit"
    lfw, bin_file = data / "synth" / "lfw", data / "synth" / "faces_synth" / "lfw.bin"
    facetrain("data", "audit", "data=folder", f"data.root={data / 'synth' / 'casia'}", f"model={model}",
              f"audit.eval=[{lfw},{bin_file}]", f"audit.out={audit}", f"audit.cache_dir={out / 'cache'}",
              f"hydra.run.dir={audit}")
    faults = read_faults(data / "synth" / "casia")
    scores = duplicate_scores(faults, audit) | label_scores(faults, audit, lfw, bin_file)
    text = table(scores)
    seconds = json.loads((audit / "audit.json").read_text())["settings"]["seconds"]
    text += "\n\naudit time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
    (out / "recall.md").write_text(text + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main()
