"""QL001: `# noqa` codes that suppress nothing (reported by the engine, which knows what
each directive suppressed)."""
from __future__ import annotations

import libcst as cst

from qlint.noqa import Noqa
from qlint.registry import SAFE, WARNING, Invalid, Rule, all_rules, register
from qlint.fixes import Fix
from qlint.rules.base import Report
from qlint.semantic.positions import locate


@register
class UnusedNoqa(Rule):
    code = "QL001"
    name = "unused-noqa"
    severity = WARNING
    summary = "A `# noqa` directive names QL codes that suppress nothing on its line"
    explanation = (
        "A `# noqa: QL301` left on a line that no longer has that finding hides the next real "
        "one: the hazard the comment once accepted is gone, a new one of the same rule on that "
        "line would go unseen. Unknown codes (a typo, a removed rule) and repeated codes "
        "suppress nothing either. Only QL codes of rules that ran on the file are judged: "
        "other tools' codes (`F401`, `E731`) and a bare `# noqa` are left alone. The rule is "
        "off by default: enable it with `--extend-select QL001` (or `extend-select`).")
    fix = "Remove the codes that suppress nothing, and the comment when none is left."
    fix_safety = SAFE
    fix_safety_note = ("The fix edits only comments: the codes that suppress nothing go, and the "
                       "comment with them when none is left.")
    opt_in = True
    valid = (
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(3, 3, 1)\n\n"
        "    def forward(self, x):\n        return x + self.conv(x)  # noqa: QL301, E501\n",
    )
    invalid = (
        Invalid(
            "import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.fc = nn.Linear(8, 2)\n\n"
            "    def forward(self, x):\n        return self.fc(x).flatten(1)  # noqa: QL301, QL999  # expect: QL001\n",
            fixed="import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.fc = nn.Linear(8, 2)\n\n"
            "    def forward(self, x):\n        return self.fc(x).flatten(1)  # noqa: QL301\n"),
        Invalid("WIDTH = 8  # noqa: QL7  # expect: QL001\n# noqa: QL301, QL301  # expect: QL001\n",
                fixed="WIDTH = 8\n# noqa: QL301\n"),
    )

    def check(self, model):
        return iter(())


class _CommentHolders(cst.CSTVisitor):
    """The nodes holding comments that mention noqa (trailing or on lines of their own)."""

    def __init__(self):
        super().__init__()
        self.found: list = []

    def visit_TrailingWhitespace(self, node):
        if node.comment is not None and "noqa" in node.comment.value.lower():
            self.found.append(node)

    def visit_EmptyLine(self, node):
        if node.comment is not None and "noqa" in node.comment.value.lower():
            self.found.append(node)


def unused_noqa_reports(model, noqa: Noqa, enabled) -> list[Report]:
    """A QL001 report (with its fix) for each directive with codes that suppressed nothing;
    call it after every other rule's findings went through `noqa.suppresses`."""
    unused = list(noqa.unused(all_rules(), enabled, UnusedNoqa.code))
    if not unused:
        return []
    visitor = _CommentHolders()
    model.module.visit(visitor)
    positions = locate(model.module, [holder.comment for holder in visitor.found])
    holders = {positions[id(holder.comment)][0]: holder for holder in visitor.found if id(holder.comment) in positions}
    reports = []
    for entry in unused:
        holder = holders.get(entry.directive.line)
        if holder is None:
            continue
        replacement = entry.replacement
        if replacement:
            fixed = holder.with_changes(comment=cst.Comment(replacement))
        elif isinstance(holder, cst.TrailingWhitespace):
            fixed = holder.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None)
        else:
            fixed = cst.RemoveFromParent()
        reports.append(Report(holder.comment, entry.message, fix=Fix.replacing(model, holder, fixed)))
    return reports
