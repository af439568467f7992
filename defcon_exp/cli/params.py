"""``defcon-params [--num-classes N]``: a Markdown table of parameter counts for every model.

With 100 classes (the default; ``num_classes=N`` is the same key) it reproduces the Params
column of the paper's Table 1 (ResNet-50, SE, ECA and DEFCON with the ``paper`` kernel sizes
3, 5, 5, 7), and adds the ECA-formula (``adaptive``) variants, CBAM and DEFCON+shuffle.
"""

from __future__ import annotations

import sys

from defcon_exp.cli.args import Tool, tool_main
from defcon_exp.run import tool_commands

__all__ = ["TOOL", "main"]
TOOL = Tool("defcon-params", __doc__, {"num_classes": 100})

main = tool_main(TOOL, lambda a: tool_commands.params(a.values))

if __name__ == "__main__":
    sys.exit(main())
