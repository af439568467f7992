"""Parameter counts of every model (``defcon-params``).

With 100 classes they reproduce the Params column of the paper's Table 1 (ResNet-50, SE,
ECA and DEFCON with the ``paper`` kernel sizes 3, 5, 5, 7), plus the ECA-formula
(``adaptive``) variants, CBAM and DEFCON+shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence

from defcon_exp.models import MODEL_NAMES, count_parameters, create_model

__all__ = ["PAPER_PARAMS", "format_table", "parameter_rows"]

#: Table 1 of the paper (CIFAR-100).
PAPER_PARAMS: dict[str, int] = {
    "resnet50": 23_705_252,
    "se": 26_220_196,
    "eca": 23_705_332,
    "defcon": 23_705_756,
    "defcon_shuffle": 23_705_756,
}


def parameter_rows(num_classes: int = 100) -> list[dict[str, object]]:
    """One row per (model, kernel rule): name, kernel sizes, params, delta vs ResNet-50."""
    rows: list[dict[str, object]] = []
    baseline = None
    for name in MODEL_NAMES:
        model = create_model(name, num_classes, device="meta")
        rules = ["paper", "adaptive"] if model.stage_kernel_sizes[0] is not None else [None]
        for rule in rules:
            if rule == "adaptive":
                model = create_model(name, num_classes, kernel_size="adaptive", device="meta")
            params = count_parameters(model)
            baseline = params if baseline is None else baseline
            paper = PAPER_PARAMS.get(name) if rule in ("paper", None) else None
            rows.append(
                {
                    "model": name,
                    "kernel_size": rule or "-",
                    "stage_kernels": (
                        "-" if rule is None else ",".join(map(str, model.stage_kernel_sizes))
                    ),
                    "params": params,
                    "extra": params - baseline,
                    "paper": paper,
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """The rows as a Markdown table, the paper's count checked (✓/✗) where it has one."""
    lines = [
        "| model | kernel_size | per-stage k | params | vs resnet50 | paper (Table 1) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        paper = row["paper"]
        paper_cell = (
            "-" if paper is None else f"{paper:,}" + (" ✓" if paper == row["params"] else " ✗")
        )
        lines.append(
            f"| {row['model']} | {row['kernel_size']} | {row['stage_kernels']} | "
            f"{row['params']:,} | +{row['extra']:,} | {paper_cell} |"
        )
    return "\n".join(lines)
