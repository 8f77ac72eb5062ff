"""Hugging Face style ViT-MAE: a config dataclass, patch embeddings with fixed sin-cos positions and
random masking, an encoder with gradient checkpointing and return_dict outputs, and _init_weights."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch import Tensor

ACT2CLS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


@dataclass
class ViTMAEConfig:
    image_size: int = 16
    patch_size: int = 4
    num_channels: int = 3
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 64
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    mask_ratio: float = 0.75
    initializer_range: float = 0.02
    use_return_dict: bool = True


def sincos_pos_embed(embed_dim: int, grid_size: int) -> Tensor:
    coords = torch.arange(grid_size, dtype=torch.float32)
    grid_h, grid_w = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(embed_dim // 4, dtype=torch.float32) / (embed_dim / 4.0))
    out_h, out_w = grid_h.reshape(-1, 1) * omega, grid_w.reshape(-1, 1) * omega
    emb = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)
    return torch.cat([torch.zeros(1, embed_dim), emb], dim=0).unsqueeze(0)


class ViTMAEEmbeddings(nn.Module):
    def __init__(self, config: ViTMAEConfig) -> None:
        super().__init__()
        self.config = config
        self.grid_size = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        self.register_buffer("position_embeddings", sincos_pos_embed(config.hidden_size, self.grid_size), persistent=False)

    def interpolate_pos_encoding(self, height: int, width: int) -> Tensor:
        new_h, new_w = height // self.config.patch_size, width // self.config.patch_size
        if new_h == self.grid_size and new_w == self.grid_size:
            return self.position_embeddings
        class_pos_embed = self.position_embeddings[:, :1]
        patch_pos_embed = self.position_embeddings[:, 1:].reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        patch_pos_embed = nn.functional.interpolate(patch_pos_embed, size=(new_h, new_w), mode="bicubic", align_corners=False)
        return torch.cat((class_pos_embed, patch_pos_embed.flatten(2).transpose(1, 2)), dim=1)

    def random_masking(self, sequence: Tensor, noise: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        batch_size, seq_length, dim = sequence.shape
        len_keep = int(seq_length * (1 - self.config.mask_ratio))
        if noise is None:
            noise = torch.rand(batch_size, seq_length, device=sequence.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        sequence_unmasked = torch.gather(sequence, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, dim))  # expect: QL104
        mask = torch.ones([batch_size, seq_length], device=sequence.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return sequence_unmasked, mask, ids_restore

    def forward(self, pixel_values: Tensor, noise: Optional[Tensor] = None, interpolate_pos_encoding: bool = False) -> Tuple[Tensor, Tensor, Tensor]:
        height, width = pixel_values.shape[-2:]
        pos = self.interpolate_pos_encoding(height, width) if interpolate_pos_encoding else self.position_embeddings
        embeddings = self.patch_embeddings(pixel_values).flatten(2).transpose(1, 2)
        embeddings = embeddings + pos[:, 1:, :]  # expect: QL301
        embeddings, mask, ids_restore = self.random_masking(embeddings, noise)
        cls_token = self.cls_token + pos[:, :1, :]  # expect: QL504
        cls_tokens = cls_token.expand(embeddings.shape[0], -1, -1)
        return torch.cat((cls_tokens, embeddings), dim=1), mask, ids_restore  # expect: QL302


class ViTMAELayer(nn.Module):
    def __init__(self, config: ViTMAEConfig) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = nn.MultiheadAttention(config.hidden_size, config.num_attention_heads, batch_first=True)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2CLS[config.hidden_act]()
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states: Tensor, output_attentions: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        normed = self.layernorm_before(hidden_states)
        attention_output, attn_weights = self.attention(normed, normed, normed, need_weights=output_attentions)
        hidden_states = self.dropout(attention_output) + hidden_states  # expect: QL301
        layer_output = self.output(self.intermediate_act_fn(self.intermediate(self.layernorm_after(hidden_states))))
        return self.dropout(layer_output) + hidden_states, attn_weights  # expect: QL301


class ViTMAEEncoder(nn.Module):
    def __init__(self, config: ViTMAEConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([ViTMAELayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, hidden_states: Tensor, output_hidden_states: bool = False) -> Tuple[Tensor, Optional[Tuple[Tensor, ...]]]:
        all_hidden_states = () if output_hidden_states else None
        for layer_module in self.layer:
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
            if self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(layer_module, hidden_states, use_reentrant=False)[0]
            else:
                hidden_states = layer_module(hidden_states)[0]
        if output_hidden_states:
            all_hidden_states = all_hidden_states + (hidden_states,)
        return hidden_states, all_hidden_states


class ViTMAEModel(nn.Module):
    def __init__(self, config: ViTMAEConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = ViTMAEEmbeddings(config)
        self.encoder = ViTMAEEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        elif isinstance(module, ViTMAEEmbeddings):
            w = module.patch_embeddings.weight.data
            nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
            nn.init.normal_(module.cls_token, std=self.config.initializer_range)

    def forward(self, pixel_values: Tensor, noise: Optional[Tensor] = None, output_hidden_states: bool = False, return_dict: Optional[bool] = None, interpolate_pos_encoding: bool = False) -> Union[Dict[str, Tensor], Tuple[Tensor, ...]]:
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        embedding_output, mask, ids_restore = self.embeddings(pixel_values, noise, interpolate_pos_encoding)
        sequence_output, hidden_states = self.encoder(embedding_output, output_hidden_states)
        sequence_output = self.layernorm(sequence_output)
        if not return_dict:
            return (sequence_output, mask, ids_restore) + ((hidden_states,) if output_hidden_states else ())
        return {"last_hidden_state": sequence_output, "mask": mask, "ids_restore": ids_restore, "hidden_states": hidden_states}
