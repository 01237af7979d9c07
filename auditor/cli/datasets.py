"""`auditor datasets`: the benchmarks shipped with the package, by name, with their sizes and sources."""

from __future__ import annotations

import argparse

from auditor.input.catalog import bundled, bundled_names


async def datasets_command(args: argparse.Namespace) -> int:
    rows = [bundled(name) for name in bundled_names()]
    width = max(len(b.name) for b in rows)
    print(f"{'name':<{width}}  {'items':>5}  {'licence':<12}  what")
    for b in rows:
        print(f"{b.name:<{width}}  {b.items:>5}  {b.licence:<12}  {b.description}")
    print()
    for b in rows:
        print(f"{b.name}: {b.source}")
    print()
    print("Use one with --dataset NAME (e.g. auditor run ... --dataset mmlu); --items N draws a stratified subsample.")
    print("A file or directory path works too. Licences and sources: SOURCE.md and LICENSE beside each sample in")
    print(f"{rows[0].folder.parent}")
    return 0
