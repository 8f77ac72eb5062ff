"""Sparse mixture-of-experts feed-forward blocks (Mixtral / Qwen-MoE style): a top-k router with
jitter, experts in a ModuleList dispatched by index, a sigmoid-gated shared expert, expert-load
statistics kept in a buffer, router outputs appended to a tuple, and a quantization-ready expert."""
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules

ACT2CLS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}


@dataclass
class MoEConfig:
    hidden_size: int = 16
    intermediate_size: int = 32
    num_local_experts: int = 4
    num_experts_per_tok: int = 2
    hidden_act: str = "silu"
    router_jitter_noise: float = 0.0
    shared_expert_intermediate_size: int = 16
    output_router_logits: bool = False


def load_balancing_loss(router_logits: Tensor, num_experts: int, top_k: int) -> Tensor:
    routing_weights = F.softmax(router_logits, dim=-1)
    _, selected_experts = torch.topk(routing_weights, top_k, dim=-1)
    tokens_per_expert = F.one_hot(selected_experts, num_experts).float().mean(dim=(0, 1))
    return torch.sum(tokens_per_expert * routing_weights.mean(dim=0)) * num_experts


class ExpertMLP(nn.Module):
    def __init__(self, config: MoEConfig, intermediate_size: Optional[int] = None) -> None:
        super().__init__()
        ffn_dim = intermediate_size or config.intermediate_size
        self.w1 = nn.Linear(config.hidden_size, ffn_dim, bias=False)
        self.w2 = nn.Linear(ffn_dim, config.hidden_size, bias=False)
        self.w3 = nn.Linear(config.hidden_size, ffn_dim, bias=False)
        self.act_fn = ACT2CLS[config.hidden_act]()

    def forward(self, hidden_states: Tensor) -> Tensor:
        current_hidden_states = self.act_fn(self.w1(hidden_states)) * self.w3(hidden_states)  # expect: QL301
        return self.w2(current_hidden_states)


class SparseMoeBlock(nn.Module):
    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.hidden_dim = config.hidden_size
        self.num_experts = config.num_local_experts
        self.top_k = config.num_experts_per_tok
        self.jitter_noise = config.router_jitter_noise
        self.gate = nn.Linear(self.hidden_dim, self.num_experts, bias=False)
        self.experts = nn.ModuleList([ExpertMLP(config) for _ in range(self.num_experts)])
        self.shared_expert = ExpertMLP(config, config.shared_expert_intermediate_size) if config.shared_expert_intermediate_size else None
        self.shared_expert_gate = nn.Linear(self.hidden_dim, 1, bias=False)
        self.register_buffer("tokens_per_expert", torch.zeros(self.num_experts, dtype=torch.long), persistent=False)

    @property
    def expert_load(self) -> Tensor:
        return self.tokens_per_expert.float() / self.tokens_per_expert.sum().clamp(min=1)

    def route(self, router_logits: Tensor) -> Tuple[Tensor, Tensor]:
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)  # expect: QL102
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)  # expect: QL203, QL104
        return routing_weights, selected_experts

    def forward(self, hidden_states: Tensor) -> Tuple[Tensor, Tensor]:
        batch_size, sequence_length, hidden_dim = hidden_states.shape
        if self.training and self.jitter_noise > 0:
            noise = torch.rand(hidden_states.shape, device=hidden_states.device) * (2 * self.jitter_noise) + (1.0 - self.jitter_noise)
            hidden_states = hidden_states * noise  # expect: QL301
        hidden_states = hidden_states.view(-1, hidden_dim)
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            router_logits = self.gate(hidden_states)
        routing_weights, selected_experts = self.route(router_logits)
        final_hidden_states = torch.zeros((batch_size * sequence_length, hidden_dim), dtype=hidden_states.dtype, device=hidden_states.device)
        expert_mask = F.one_hot(selected_experts, num_classes=self.num_experts).permute(2, 1, 0)
        if self.training:
            with torch.no_grad():
                self.tokens_per_expert += expert_mask.sum(dim=(1, 2))
        for expert_idx in range(self.num_experts):
            expert_layer = self.experts[expert_idx]
            idx, top_x = torch.where(expert_mask[expert_idx])
            current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
            current_hidden_states = expert_layer(current_state) * routing_weights[top_x, idx, None]  # expect: QL301
            # index_add_ writes into a float buffer made by torch.zeros; the activation is only its source.
            final_hidden_states.index_add_(0, top_x, current_hidden_states)  # allow: QL104
        if self.shared_expert is not None:
            shared_output = torch.sigmoid(self.shared_expert_gate(hidden_states)) * self.shared_expert(hidden_states)  # expect: QL301
            final_hidden_states = final_hidden_states + shared_output  # expect: QL301
        return final_hidden_states.reshape(batch_size, sequence_length, hidden_dim), router_logits


class MoEDecoderLayer(nn.Module):
    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size)
        self.block_sparse_moe = SparseMoeBlock(config)
        self.output_router_logits = config.output_router_logits

    def forward(self, hidden_states: Tensor, output_router_logits: Optional[bool] = None, **kwargs: Any) -> Tuple[Tensor, ...]:
        output_router_logits = self.output_router_logits if output_router_logits is None else output_router_logits
        residual = hidden_states
        hidden_states, router_logits = self.block_sparse_moe(self.post_attention_layernorm(hidden_states))
        outputs = (residual + hidden_states,)  # expect: QL301
        if output_router_logits:
            outputs += (router_logits,)
        return outputs


class QuantizableExpertMLP(nn.Module):
    """A dense expert ready for int8: a ReLU-gated GLU whose product goes through a FloatFunctional."""

    def __init__(self, hidden_size: int = 16, intermediate_size: int = 32) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.w1 = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.act_fn = nn.ReLU()
        self.w3 = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.gate_mul = FloatFunctional()
        self.w2 = nn.Linear(intermediate_size, hidden_size, bias=False)
        self.dequant = DeQuantStub()

    def forward(self, hidden_states: Tensor) -> Tensor:
        x = self.quant(hidden_states)
        x = self.gate_mul.mul(self.act_fn(self.w1(x)), self.w3(x))
        return self.dequant(self.w2(x))

    def fuse_model(self) -> None:
        fuse_modules(self, [["w1", "act_fn"]], inplace=True)
