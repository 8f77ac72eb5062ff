"""DETR-style set prediction: a sine positional encoding built from the feature shape, learned
object queries, a decoder that adds positions to queries and keys, box MLPs with iterative
reference-point refinement, and a quantized head that converts boxes after dequantization."""
import copy
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.quantization import DeQuantStub, QuantStub


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))  # allow: QL104, QL301, QL303


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class PositionEmbeddingSine(nn.Module):
    def __init__(self, num_pos_feats: int = 8, temperature: int = 10000, scale: float = 2 * math.pi):
        super().__init__()
        self.num_pos_feats, self.temperature, self.scale = num_pos_feats, temperature, scale

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        not_mask = torch.ones(b, h, w)
        y_embed, x_embed = not_mask.cumsum(1, dtype=torch.float32), not_mask.cumsum(2, dtype=torch.float32)
        y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x, pos_y = x_embed[:, :, :, None] / dim_t, y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 32, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.activation = _ACTIVATIONS[activation]

    def with_pos_embed(self, tensor: Tensor, pos: Optional[Tensor]) -> Tensor:
        return tensor if pos is None else tensor + pos  # expect: QL301

    def forward(self, tgt: Tensor, memory: Tensor, pos: Optional[Tensor] = None, query_pos: Optional[Tensor] = None) -> Tensor:
        q = k = self.with_pos_embed(tgt, query_pos)
        tgt = self.norm1(tgt + self.dropout(self.self_attn(q, k, value=tgt)[0]))  # expect: QL301
        attn = self.multihead_attn(self.with_pos_embed(tgt, query_pos), self.with_pos_embed(memory, pos), memory)[0]
        tgt = self.norm2(tgt + self.dropout(attn))  # expect: QL301
        # F.relu reaches this call through an attribute filled from a lookup table; the call names no function.
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(tgt))))  # allow: QL101
        return self.norm3(tgt + self.dropout(tgt2))  # expect: QL301


class TransformerDecoder(nn.Module):
    def __init__(self, layer: nn.Module, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt, memory, pos=None, query_pos=None):
        intermediate = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos=pos, query_pos=query_pos)
            intermediate.append(self.norm(tgt))  # expect: QL401
        intermediate[-1] = self.norm(tgt)  # expect: QL401
        return torch.stack(intermediate)  # expect: QL302


class SharedWeightsDecoder(TransformerDecoder):
    def __init__(self, layer: nn.Module, num_layers: int, d_model: int):
        super().__init__(layer, 1, d_model)
        self.layers = nn.ModuleList([layer] * num_layers)  # expect: QL402


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)  # expect: QL101
        return x


class RefineDecoder(nn.Module):
    def __init__(self, d_model: int = 16, nhead: int = 2, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(d_model, nhead) for _ in range(num_layers))
        self.bbox_embed = nn.ModuleList(MLP(d_model, d_model, 4, 2) for _ in range(num_layers))
        self.ref_point_head = MLP(d_model, d_model, 4, 2)

    def forward(self, tgt, memory, query_pos, pos=None):
        reference = self.ref_point_head(query_pos).sigmoid()
        boxes = []
        for layer, box_head in zip(self.layers, self.bbox_embed):
            tgt = layer(tgt, memory, pos=pos, query_pos=query_pos)
            new_ref = (box_head(tgt) + inverse_sigmoid(reference)).sigmoid()  # expect: QL301
            reference = new_ref.detach()
            boxes.append(new_ref)
        return tgt, torch.stack(boxes)  # expect: QL302


class TinyDETR(nn.Module):
    def __init__(self, num_classes: int = 3, num_queries: int = 5, d_model: int = 16, nhead: int = 2):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, d_model, 3, 2, 1), nn.BatchNorm2d(d_model), nn.ReLU(inplace=True))  # expect: QL201
        self.position = PositionEmbeddingSine(d_model // 2)
        self.query_embed = nn.Parameter(torch.randn(num_queries, d_model))
        self.decoder = RefineDecoder(d_model, nhead)
        self.class_embed = nn.Linear(d_model, num_classes + 1)

    def forward(self, images: Tensor):
        src = self.backbone(images)
        pos = self.position(src).flatten(2).permute(2, 0, 1)
        query_pos = self.query_embed.unsqueeze(1).repeat(1, images.shape[0], 1)  # expect: QL504
        hs, boxes = self.decoder(torch.zeros_like(query_pos), src.flatten(2).permute(2, 0, 1), query_pos, pos)
        return {"pred_logits": self.class_embed(hs), "pred_boxes": boxes[-1], "aux_boxes": [b for b in boxes[:-1]]}


class QuantizedPredictionHead(nn.Module):
    def __init__(self, d_model: int = 16, num_classes: int = 3):
        super().__init__()
        self.quant = QuantStub()
        self.class_embed = nn.Linear(d_model, num_classes + 1)
        self.box_fc, self.box_relu, self.box_out = nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 4)
        self.dequant = DeQuantStub()

    def forward(self, hs: Tensor, img_h: int, img_w: int):
        hs = self.quant(hs)
        logits = self.dequant(self.class_embed(hs))
        boxes = self.dequant(self.box_out(self.box_relu(self.box_fc(hs)))).sigmoid()
        cx, cy, w, h = boxes.unbind(-1)
        corners = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        scores, labels = F.softmax(logits, -1)[..., :-1].max(-1)
        return scores, labels, corners * torch.tensor([img_w, img_h, img_w, img_h])
