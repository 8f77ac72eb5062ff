"""Quantization state and non-activation tensors, by dataflow.

QL1xx-QL3xx report only where a value may be quantized: never before a QuantStub, after a
DeQuantStub or inside a `qconfig = None` island, and never on masks, indices, integer
tensors or shapes. A child class gets its inputs from its parents' call sites (in any file);
module-level functions called from forward are analysed with their arguments. Each case is
checked both ways: the float (or non-activation) case is silent, its twin is reported.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths, lint_source

HEADER = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.ao.quantization import DeQuantStub, QuantStub
"""


def codes(source: str) -> set[tuple[int, str]]:
    """(line, code) found, lines counted from the first line after HEADER."""
    text = textwrap.dedent(HEADER) + textwrap.dedent(source)
    offset = textwrap.dedent(HEADER).count("\n")
    return {(f.line - offset, f.code) for f in lint_source(text, "case.py")}


def test_ops_before_the_quant_stub_and_after_the_dequant_stub_run_in_float():
    found = codes("""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.conv = nn.Conv2d(3, 3, 1)

            def forward(self, x):
                x = (x - 0.5) / 0.25
                y = self.conv(self.quant(x))
                z = y * 2
                out = self.dequant(y)
                return torch.exp(out) + 1
    """)
    assert found == {(11, "QL301")}


def test_a_child_gets_the_state_its_parent_gives_it():
    found = codes("""
        class Head(nn.Module):
            def forward(self, x):
                return torch.softmax(x * 2, dim=-1)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.conv = nn.Conv2d(3, 3, 1)
                self.head = Head()

            def forward(self, x):
                return self.head(self.dequant(self.conv(self.quant(x))))
    """)
    assert found == set()


def test_a_child_given_a_quantized_value_is_reported():
    found = codes("""
        class Head(nn.Module):
            def forward(self, x):
                return torch.softmax(x * 2, dim=-1)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.conv = nn.Conv2d(3, 3, 1)
                self.head = Head()

            def forward(self, x):
                return self.dequant(self.head(self.conv(self.quant(x))))
    """)
    assert found == {(4, "QL102"), (4, "QL301")}


@pytest.mark.parametrize("quantized", [False, True])
def test_a_line_reached_in_float_and_in_an_unknown_context_is_judged_by_its_evidence(quantized):
    """A base method called by the base's own forward (nobody calls the base: unknown) and by
    a quantizable subclass before its QuantStub (float): float outranks unknown. Called after
    the stub, the subclass gives it a quantized value: reported."""
    order = "x = self.quant(self._transform(x))" if not quantized else "x = self._transform(self.quant(x))"
    found = codes(f"""
        class Base(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def _transform(self, x):
                return x * 0.5 + 0.1

            def forward(self, x):
                return self.conv(self._transform(x))

        class QuantizableBase(Base):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()

            def forward(self, x):
                {order}
                return self.dequant(self.conv(x))
    """)
    assert found == ({(8, "QL301")} if quantized else set())


def test_a_subclass_in_another_file_gives_its_base_method_a_float_context(tmp_path: Path):
    """torchvision's QuantizableGoogLeNet calls GoogLeNet._transform_input (googlenet.py) before
    its QuantStub (quantization/googlenet.py): the base's lines are float there."""
    package = tmp_path / "zoo"
    (package / "quantization").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "quantization" / "__init__.py").write_text("")
    (package / "net.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def _transform_input(self, x):
                return torch.cat([x[:, :1] * 0.5, x[:, 1:]], 1)

            def forward(self, x):
                return self.conv(self._transform_input(x))
    """))
    (package / "quantization" / "net.py").write_text(textwrap.dedent("""
        import torch
        from ..net import Net


        class QuantizableNet(Net):
            def __init__(self):
                super().__init__()
                self.quant = torch.ao.quantization.QuantStub()
                self.dequant = torch.ao.quantization.DeQuantStub()

            def forward(self, x):
                x = self._transform_input(x)
                return self.dequant(self.conv(self.quant(x)))
    """))
    files = sorted(package.rglob("*.py"))
    alone = lint_paths([package / "net.py"], load_config(start=tmp_path), jobs=1)
    together = lint_paths(files, load_config(start=tmp_path), jobs=1)
    assert {(f.line, f.code) for f in alone} == {(12, "QL301"), (12, "QL302")}
    assert [f for f in together if f.line == 12] == []


def test_a_qconfig_none_island_runs_in_float():
    found = codes("""
        class Post(nn.Module):
            def forward(self, x):
                return torch.exp(x) / x.sum()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.conv = nn.Conv2d(3, 3, 1)
                self.post = Post()
                self.post.qconfig = None

            def forward(self, x):
                return self.post(self.dequant(self.conv(self.quant(x))))
    """)
    assert found == set()


_EMBEDDINGS = """
    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.words = nn.Embedding(10, 8)
            self.positions = nn.Embedding(16, 8)
            self.register_buffer("position_ids", torch.arange(16).expand((1, -1)))

        def forward(self, ids):
            out = self.words(ids)
            out += self.positions(self.position_ids[:, :ids.size(1)])
            return out
"""


@pytest.mark.parametrize("island, reported", [("self.embed.qconfig = None", False), ("pass", True)])
def test_inputs_through_a_float_island_into_the_quant_stub_are_float(island, reported):
    """BERT: the embeddings (`qconfig = None`) run before the QuantStub, so the forward's inputs
    are float, and the extended mask a helper method computes from them is float too."""
    found = codes(textwrap.dedent(_EMBEDDINGS) + textwrap.dedent(f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = Embed()
                {island}
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.proj = nn.Linear(8, 8)

            def extended_mask(self, mask):
                return (1.0 - mask[:, None, :]) * -1e4

            def forward(self, ids, mask):
                h = self.proj(self.quant(self.embed(ids)))
                return self.dequant(h) + self.extended_mask(mask)
    """))
    assert found == ({(11, "QL203"), (23, "QL301"), (27, "QL301")} if reported else set())


@pytest.mark.parametrize("island, reported", [("self.embed.qconfig = None", False), ("pass", True)])
def test_an_embedding_of_indices_in_a_float_island_is_float(island, reported):
    """An nn.Embedding looked up with an integer input or a slice of an integer buffer inside a
    `qconfig = None` island computes in float; outside one its output may be quantized."""
    found = codes(textwrap.dedent(_EMBEDDINGS) + textwrap.dedent(f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = Embed()
                {island}
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.proj = nn.Linear(8, 8)

            def forward(self, ids: torch.LongTensor, x):
                return self.dequant(self.proj(self.quant(x))), self.embed(ids)
    """))
    assert found == ({(11, "QL203")} if reported else set())


@pytest.mark.parametrize("helper_input, reported", [("self.dequant(y)", False), ("y", True)])
def test_module_level_functions_are_analysed_with_their_arguments(helper_input, reported):
    found = codes(f"""
        def attention(query, key, scaling: float):
            weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
            return F.softmax(weights, dim=-1)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.proj = nn.Linear(8, 8)

            def forward(self, x):
                y = self.proj(self.quant(x))
                return self.dequant(attention({helper_input}, {helper_input}, 0.125))
    """)
    expected = {(3, "QL302"), (3, "QL301"), (4, "QL102")}
    assert found == (expected if reported else set())


def test_a_function_chosen_through_a_dispatch_table_is_analysed():
    """transformers: `ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention_forward)`."""
    found = codes("""
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


        def eager_attention_forward(module, query, key, scaling: float):
            return torch.matmul(query, key) * scaling

        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)
                self.impl = "eager"

            def forward(self, x):
                attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.impl, eager_attention_forward)
                return attention(self, self.q(x), self.k(x), 0.1)
    """)
    assert found == {(6, "QL301"), (6, "QL302")}


@pytest.mark.parametrize("builds_modules, reported", [(True, True), (False, False)])
def test_a_class_on_an_unresolved_base_that_builds_modules_is_a_module(builds_modules, reported):
    body = "self.proj = nn.Linear(8, 8)" if builds_modules else "self.scale = 2.0"
    found = codes(f"""
        from transformers.modeling_layers import GradientCheckpointingLayer


        class DecoderLayer(GradientCheckpointingLayer):
            def __init__(self):
                super().__init__()
                {body}

            def forward(self, hidden_states):
                return hidden_states + hidden_states
    """)
    assert found == ({(11, "QL301")} if reported else set())


@pytest.mark.parametrize("expression", [
    "x.long() * 2", "x.topk(2)[1] + 1", "x.to(torch.bool).cumsum(1) * 2", "(x > 0).cumsum(1) / 2",
    "torch.arange(8) * 2", "F.one_hot(ids, 8) * 2", "torch.ones_like(x).cumsum(1, dtype=torch.long) - 1",
    "torch.div(torch.arange(8), 2, rounding_mode='floor') * 3", "ids * 2", "past.get_length() + 1",
])
def test_indices_masks_and_integer_tensors_are_not_activations(expression):
    found = codes(f"""
        from typing import Optional
        from transformers.cache_utils import Cache


        class Net(nn.Module):
            def forward(self, x, ids: torch.LongTensor, past: Optional[Cache] = None):
                return {expression}
    """)
    assert found == set()


def test_a_float_tensor_is_an_activation():
    found = codes("""
        class Net(nn.Module):
            def forward(self, x, ids: torch.LongTensor):
                return x.float() * 2, x.to(torch.float16) * 2
    """)
    assert found == {(4, "QL301"), (4, "QL104")}


@pytest.mark.parametrize("mask, reported", [("mask.to(torch.bool)", False), ("features", True)])
def test_a_mask_passed_by_the_parent_keeps_the_child_silent(mask, reported):
    """DETR: the position embedding's `mask.cumsum(1)` is given a bool mask by its parent."""
    found = codes(f"""
        class PositionEmbedding(nn.Module):
            def forward(self, shape, mask=None):
                y_embed = mask.cumsum(1, dtype=torch.float32)
                return y_embed / (y_embed[:, -1:] + 1e-6)

        class Detector(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = nn.Conv2d(3, 3, 1)
                self.position = PositionEmbedding()

            def forward(self, images, mask):
                features = self.backbone(images)
                return features, self.position(features.shape, mask={mask})
    """)
    expected = {(4, "QL104"), (5, "QL303"), (5, "QL301")}
    assert found == (expected if reported else set())


def test_writing_an_activation_into_a_buffer_makes_it_an_activation():
    found = codes("""
        class Net(nn.Module):
            def forward(self, x):
                out = torch.zeros_like(x)
                out[:, 0] = x[:, 0]
                return out * 2
    """)
    assert found == {(6, "QL301")}
