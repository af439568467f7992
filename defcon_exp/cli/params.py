"""``defcon-params [--num-classes N]``: a Markdown table of parameter counts for every model.

With 100 classes (the default; ``num_classes=N`` is the same key) it reproduces the Params
column of the paper's Table 1 (ResNet-50, SE, ECA and DEFCON with the ``paper`` kernel sizes
3, 5, 5, 7), and adds the ECA-formula (``adaptive``) variants, CBAM and DEFCON+shuffle.
"""

from __future__ import annotations

import sys

from defcon_exp.cli.args import Parsed, Tool, error, tool_main

__all__ = ["TOOL", "main"]
TOOL = Tool("defcon-params", __doc__, {"num_classes": 100})


def params(args: Parsed) -> int:
    """The Markdown table of parameter counts for ``num_classes`` classes (0 ok, 2 usage)."""
    from defcon_exp.analysis.params import format_table, parameter_rows

    classes = args.values["num_classes"]
    if classes < 1:
        return error(TOOL.prog, f"--num-classes must be positive, received {classes}", 2)
    print(format_table(parameter_rows(classes)))
    return 0


main = tool_main(TOOL, params)

if __name__ == "__main__":
    sys.exit(main())
