"""Graph convolutional networks on a dense adjacency: Kipf-Welling GCN layers with raw weight
parameters, symmetric degree normalization in forward, a GIN layer with a learnable epsilon, and
a quantizable GCN that normalizes the adjacency before quantizing it and aggregates with
FloatFunctional.matmul."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def normalize_adjacency(adj: Tensor, add_self_loops: bool = True) -> Tensor:
    if add_self_loops:
        adj = adj + torch.eye(adj.size(-1), dtype=adj.dtype)
    deg = adj.sum(-1)
    deg_inv_sqrt = deg.pow(-0.5)
    deg_inv_sqrt[torch.isinf(deg_inv_sqrt)] = 0.0
    return deg_inv_sqrt.unsqueeze(-1) * adj * deg_inv_sqrt.unsqueeze(-2)


class GraphConvolution(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input: Tensor, adj: Tensor) -> Tensor:
        support = input @ self.weight  # expect: QL301, QL504
        output = torch.matmul(adj, support)  # expect: QL302
        # Only tests whether the optional parameter exists; it is not used as a tensor here.
        if self.bias is not None:  # allow: QL504
            return output + self.bias  # expect: QL301, QL504
        return output


class NormalizedGCNLayer(nn.Module):
    """Normalizes the adjacency inside forward, on every call."""

    def __init__(self, in_features: int, out_features: int, self_loops: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.self_loops = self_loops

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        n = adj.shape[-1]
        if self.self_loops:
            adj = adj + torch.eye(n, dtype=adj.dtype)  # expect: QL301
        deg = adj.sum(dim=-1)  # expect: QL104
        deg_inv_sqrt = deg.pow(-0.5)  # expect: QL104
        deg_inv_sqrt = deg_inv_sqrt.masked_fill(deg_inv_sqrt == float("inf"), 0.0)
        norm_adj = deg_inv_sqrt.unsqueeze(-1) * adj * deg_inv_sqrt.unsqueeze(-2)  # expect: QL301
        return torch.bmm(norm_adj, self.linear(x))  # expect: QL302


class GINLayer(nn.Module):
    def __init__(self, dim: int, train_eps: bool = True):
        super().__init__()
        if train_eps:
            self.eps = nn.Parameter(torch.zeros(1))
        else:
            self.register_buffer("eps", torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        neighbours = adj @ x  # expect: QL301
        out = (1 + self.eps) * x + neighbours  # expect: QL301, QL504
        return self.mlp(out)


class SAGEConv(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.lin_self = nn.Linear(in_features, out_features)
        self.lin_neigh = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        deg = adj.sum(-1, keepdim=True).clamp(min=1)  # expect: QL104
        neigh = torch.matmul(adj, x) / deg  # expect: QL302, QL303
        out = torch.cat([self.lin_self(x), self.lin_neigh(neigh)], dim=-1)  # expect: QL302
        return F.normalize(out, p=2, dim=-1)  # expect: QL104


class GCN(nn.Module):
    def __init__(self, nfeat: int, nhid: int, nclass: int, dropout: float = 0.5):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        x = F.relu(self.gc1(x, adj))  # expect: QL101
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)  # expect: QL102


class GraphReadout(nn.Module):
    """Mean readout over nodes with an optional node mask, then a linear classifier."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.gin1 = GINLayer(dim)
        self.gin2 = GINLayer(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor, adj: Tensor, node_mask: Optional[Tensor] = None) -> Tensor:
        h = self.gin2(self.gin1(x, adj), adj)
        if node_mask is not None:
            h = h.masked_fill(~node_mask.unsqueeze(-1), 0.0)
        return self.classifier(h.mean(dim=0))


class QuantizableGCN(nn.Module):
    """Dense GCN ready for eager quantization: the adjacency is normalized in float by a free
    function, both inputs get their own QuantStub, one FloatFunctional per aggregation."""

    def __init__(self, nfeat: int, nhid: int, nclass: int):
        super().__init__()
        self.quant_x = QuantStub()
        self.quant_adj = QuantStub()
        self.lin1 = nn.Linear(nfeat, nhid)
        self.agg1 = FloatFunctional()
        self.relu1 = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.lin2 = nn.Linear(nhid, nclass)
        self.agg2 = FloatFunctional()
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        adj = normalize_adjacency(adj)
        qx = self.quant_x(x)
        qadj = self.quant_adj(adj)
        h = self.relu1(self.agg1.matmul(qadj, self.lin1(qx)))
        h = self.agg2.matmul(qadj, self.lin2(self.dropout(h)))
        return F.log_softmax(self.dequant(h), dim=1)
