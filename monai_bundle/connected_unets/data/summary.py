"""The table ``prepare`` ends with: what went into each split, and what was skipped and why."""

from __future__ import annotations

from collections import Counter


def summary_table(datalist: dict[str, list[dict]]) -> str:
    """Images, lesions (and augmented copies) and patients per split and pathology; skips counted by kind."""
    header = f"{'split':<12} {'pathology':<26} {'images':>7} {'lesions':>8} {'augmented':>10} {'patients':>9}"
    lines = [header, "-" * len(header)]
    for split, entries in datalist.items():
        if split == "skipped":
            continue
        groups = sorted({entry.get("pathology", "") for entry in entries}) or [""]
        for pathology in [*groups, None] if len(groups) > 1 else groups:
            chosen = [e for e in entries if pathology is None or e.get("pathology", "") == pathology]
            originals = [e for e in chosen if e.get("augmentation", "none") == "none"]
            lines.append(
                f"{split:<12} "
                f"{'(all)' if pathology is None else pathology or '-':<26} {len({e['source'] for e in originals}):>7} "
                f"{len(originals):>8} {len(chosen) - len(originals):>10} {len({e['patient'] for e in originals}):>9}"
            )
    skipped = datalist.get("skipped", [])
    lines.append("")
    lines.append(f"skipped: {len(skipped)}" + ("" if skipped else " (nothing)"))
    for kind, count in Counter(skip["kind"] for skip in skipped).most_common():
        lines.append(f"  {kind:<36} {count:>6}")
    return "\n".join(lines)
