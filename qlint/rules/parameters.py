"""QL504: raw nn.Parameters, which convert() leaves float."""
from __future__ import annotations

from qlint.registry import WARNING, Rule, register
from qlint.rules.base import Report, forward_traces

_HEADER = "import torch\nimport torch.nn as nn\n\n\n"


@register
class RawParameterUse(Rule):
    code = "QL504"
    name = "raw-parameter-use"
    severity = WARNING
    summary = "An nn.Parameter attribute read directly in the forward path"
    explanation = (
        "`convert()` quantizes the weights of the modules it swaps; a bare `nn.Parameter` "
        "(a position embedding, a class token, a relative-position bias table, a LayerScale "
        "gamma) is left float. Inside the quantized region it meets quantized activations: "
        "`x + self.pos_embed` raises, and a parameter passed to a float op silently keeps "
        "that part of the model in float. Shape queries (`self.pos_embed.shape`) are fine.")
    fix = ("Wrap the parameter in a module that quantization knows (an nn.Embedding looked up by "
           "index, a 1x1 conv), or dequantize around its use and re-quantize after.")
    valid = (
        _HEADER + "class Embed(nn.Module):\n    def __init__(self, n, dim):\n        super().__init__()\n"
        "        self.pos = nn.Embedding(n, dim)\n        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))\n\n"
        "    def forward(self, x, idx):\n        if self.pos_embed is not None:\n"
        "            n = self.pos_embed.shape[1]\n        return self.pos(idx), n\n",
    )
    invalid = (
        _HEADER + "class Embed(nn.Module):\n    def __init__(self, n, dim):\n        super().__init__()\n"
        "        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))\n"
        "        self.register_parameter('gamma', nn.Parameter(torch.ones(dim)))\n\n"
        "    def forward(self, x):\n        x = x * self.gamma  # expect: QL301, QL504\n"
        "        return self.pos_embed.expand(x.shape[0], -1, -1)  # expect: QL504\n",
    )

    def check(self, model):
        seen = set()
        for _, trace in forward_traces(model):
            for read in trace.param_reads:
                if id(read.node) not in seen:
                    seen.add(id(read.node))
                    yield Report(read.node, f"self.{read.name} is an nn.Parameter used directly; convert() "
                                 "leaves it float, and it meets quantized activations here. Hold it "
                                 "in a quantizable module, or dequantize around this use.", anchor=read.anchor)
