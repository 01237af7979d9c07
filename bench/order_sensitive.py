"""How many benchmark items are order-sensitive, by reason, and how many share an option list.

Usage: .venv/bin/python bench/order_sensitive.py [--dataset DIR] [--out FILE]

Defaults: the MMLU test split in ../shared/data/mmlu/test beside the clone (invalid rows skipped), results written to
bench/results/order_sensitive.json. Prints a table: items per reason code (an item may have several),
items with any reason, and the option-set groups (identical option lists shared by 2 items or more).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from auditor.input.items import Item, load_items
from auditor.input.sensitivity import REASON_CODES, group_by_option_set, order_sensitivity

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu" / "test"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "order_sensitive.json"


def measure(items: list[Item]) -> dict[str, Any]:
    """Counts per reason code, items with any reason, and option-set groups."""
    reasons = {item.id: order_sensitivity(item) for item in items}
    per_code = Counter(code for codes in reasons.values() for code in codes)
    flagged = sum(bool(codes) for codes in reasons.values())
    groups = group_by_option_set(items)
    grouped = sum(len(ids) for ids in groups.values())
    n = len(items)
    largest = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:5]
    return {
        "items": n,
        "per_code": {code: {"items": per_code[code], "pct": _pct(per_code[code], n)} for code in REASON_CODES},
        "any": {"items": flagged, "pct": _pct(flagged, n)},
        "option_set_groups": {
            "groups": len(groups),
            "items": grouped,
            "pct": _pct(grouped, n),
            "largest": [{"options": json.loads(key), "items": len(ids)} for key, ids in largest],
        },
    }


def _pct(k: int, n: int) -> float:
    return round(100.0 * k / n, 2) if n else 0.0


def render(result: dict[str, Any]) -> str:
    lines = [f"{'reason':<22} {'items':>7} {'%':>7}", "-" * 38]
    for code, row in result["per_code"].items():
        lines.append(f"{code:<22} {row['items']:>7} {row['pct']:>6.2f}%")
    lines.append("-" * 38)
    lines.append(f"{'any reason':<22} {result['any']['items']:>7} {result['any']['pct']:>6.2f}%")
    groups = result["option_set_groups"]
    lines.append(
        f"option-set groups (>= 2 items): {groups['groups']} groups covering {groups['items']} items"
        f" ({groups['pct']:.2f}%)"
    )
    for group in groups["largest"]:
        lines.append(f"  {group['items']:>4} items share {group['options']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    loaded = load_items(args.dataset, skip_invalid=True)
    result = {"dataset": str(args.dataset), "skipped_invalid": len(loaded.skipped), **measure(loaded.items)}
    seconds = time.perf_counter() - started  # printed only: the JSON stays the same from run to run
    print(f"{args.dataset}: {result['items']} items ({result['skipped_invalid']} invalid rows skipped)")
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {args.out} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
