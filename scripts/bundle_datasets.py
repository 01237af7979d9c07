"""Write the benchmark samples shipped in the package (auditor/input/data/<name>/) from the staged files.

    python -m scripts.bundle_datasets            # rewrite items.jsonl + meta.json of every bundled set
    python -m scripts.bundle_datasets --check    # rebuild in memory; exit 1 unless the shipped bytes match

Reads ../shared/data (the staged benchmark files, see its SOURCES.md; `--data` to point elsewhere) with the
package's own loaders, skips invalid items (counted in meta.json), and draws each sample with a fixed seed:
every subject represented where the benchmark has subjects, a seeded random sample where it has none,
never the first rows. Item text is copied unchanged; ids and subjects are the ones the loaders give the
staged files, so an audit of the path and of the name score the same prompts. LICENSE and SOURCE.md
beside each sample are written by hand (they carry the licence and attribution).

Only benchmarks whose licence allows redistribution are bundled: MMLU (MIT), MMLU-Pro (MIT),
ARC (CC BY-SA 4.0), OpenBookQA (Apache-2.0), HellaSwag (MIT). CMMLU and C-Eval (CC BY-NC-SA 4.0) are not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from auditor.input.catalog import DATA_DIR
from auditor.input.items import Item, load_items
from auditor.input.sampling import per_subject_sample, stratified_sample
from auditor.run.plan import dataset_sha256

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SEED = 0
PLURAL = {"category": "categories", "activity label": "activity labels"}


@dataclass(frozen=True)
class Spec:
    title: str
    split: str
    staged: str  # path under the data folder
    population: int  # items in the official split
    per_subject: int | None  # k per subject, or
    n: int | None  # a seeded sample of n (None with per_subject None: every item)
    unit: str  # what a subject is called in this benchmark
    licence: str
    source: str


SPECS = {
    "mmlu": Spec(
        "MMLU", "test", "mmlu/test", 14042, 5, None, "subject", "MIT",
        "MMLU (Hendrycks et al., ICLR 2021), test split as in the data.tar release and HF cais/mmlu; staged from"
        " stanford-cs336/spring2024-assignment5-alignment@fcbfe2b3b72cb9e5536b93ba12265d04b8ca4cca"
        " data/mmlu/test/*.csv",
    ),
    "mmlu-pro": Spec(
        "MMLU-Pro", "test", "mmlu_pro/test.jsonl", 12032, 10, None, "category", "MIT",
        "MMLU-Pro (Wang et al., NeurIPS 2024), test split; the dataset fields of the authors' evaluation files in"
        " TIGER-AI-Lab/MMLU-Pro@4885ba7d293b6615be332ca69a9df773fdf67dce eval_results/merged/*_result.json",
    ),
    "arc-challenge": Spec(
        "ARC-Challenge", "test", "arc/original_jsonl_subset/ARC-Challenge-Test.jsonl", 1172, None, 200, "subject",
        "CC BY-SA 4.0",
        "ARC (Clark et al., 2018), Challenge test split, original AI2 JSONL lines; staged from"
        " zhouqb/order_dependency_problem@c78952c019f7b3fe3c2c14a1dfc7eaeed2efee48 data/arc/ARC-Challenge-Test.jsonl"
        " (1,150 of the 1,172 questions: those with letter labels)",
    ),
    "openbookqa": Spec(
        "OpenBookQA", "test", "openbookqa/llmfoundry_icl/openbook_qa.jsonl", 500, None, None, "subject",
        "Apache-2.0",
        "OpenBookQA (Mihaylov et al., EMNLP 2018), main test split; MosaicML's re-format in"
        " mosaicml/llm-foundry@8c8dd48f72168c5d51e2f7b151595892a8fba43d"
        " scripts/eval/local_data/commonsense_reasoning/openbook_qa.jsonl",
    ),
    "hellaswag": Spec(
        "HellaSwag", "validation", "hellaswag/klosax_val_text/hellaswag_val_full.txt.bz2", 10042, 1, None,
        "activity label", "MIT",
        "HellaSwag (Zellers et al., ACL 2019), validation split (the one reported; test has no labels); llama.cpp's"
        " text re-format of hellaswag_val.jsonl in klosax/hellaswag_text_data@1105d370f8340eac3c63a91fd1fa58e8999f9505"
        " hellaswag_val_full.txt.bz2 (6 lines per item: activity label + context, gold index, 4 endings)",
    ),
}  # fmt: skip


def describe(spec: Spec, n: int, n_subjects: int) -> str:
    if spec.per_subject is not None:
        return (f"{n:,} of {spec.population:,} {spec.title} {spec.split} items, {spec.per_subject} per {spec.unit}"
                f" ({n_subjects} {PLURAL.get(spec.unit, spec.unit + 's')}), seed {SEED}")  # fmt: skip
    if spec.n is not None:
        return f"{n:,} of {spec.population:,} {spec.title} {spec.split} items, seeded random sample, seed {SEED}"
    return f"all {n:,} {spec.title} {spec.split} items"


def build(name: str, spec: Spec, data: Path) -> tuple[bytes, bytes]:
    """items.jsonl and meta.json of one bundled set, as bytes."""
    path = data / spec.staged
    loaded = load_items(path, skip_invalid=True)
    if spec.per_subject is not None:
        items = per_subject_sample(loaded.items, spec.per_subject, SEED)
    elif spec.n is not None:
        items = stratified_sample(loaded.items, spec.n, SEED)
    else:
        items = list(loaded.items)
    lines = "".join(json.dumps(_record(it), ensure_ascii=False) + "\n" for it in items).encode()
    subjects = sorted({it.subject for it in items})
    meta = {
        "name": name,
        "title": spec.title,
        "split": spec.split,
        "description": describe(spec, len(items), len(subjects)),
        "items": len(items),
        "population": spec.population,
        "drawn_from": len(loaded.items),
        "invalid_left_out": len(loaded.skipped),
        "sample": {"per_subject": spec.per_subject, "n": spec.n, "seed": SEED, "subject_field": spec.unit},
        "subjects": len(subjects),
        "licence": spec.licence,
        "source": spec.source,
        "staged_path": spec.staged,
        "staged_sha256": dataset_sha256(loaded.files, path),
        "items_sha256": hashlib.sha256(lines).hexdigest(),
        "built_by": "scripts/bundle_datasets.py",
    }
    return lines, (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode()


def _record(it: Item) -> dict[str, object]:
    return {"id": it.id, "subject": it.subject, "question": it.question, "choices": list(it.options),
            "answer": it.answer}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"staged benchmark files (default {DEFAULT_DATA})")
    ap.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    ap.add_argument("names", nargs="*", help="only these sets (default: all)")
    args = ap.parse_args(argv)
    bad = 0
    for name in args.names or list(SPECS):
        items, meta = build(name, SPECS[name], args.data)
        folder = DATA_DIR / name
        if args.check:
            same = (folder / "items.jsonl").read_bytes() == items and (folder / "meta.json").read_bytes() == meta
            print(f"{name}: {'identical' if same else 'DIFFERS from the shipped files'}")
            bad += not same
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "items.jsonl").write_bytes(items)
        (folder / "meta.json").write_bytes(meta)
        print(f"{name}: {json.loads(meta)['description']} -> {folder.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
