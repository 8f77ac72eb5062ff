"""Hugging Face style wav2vec 2.0 front end: a conv feature encoder whose norm layout is picked by a flag,
gradient checkpointing, a weight-normed positional conv, masked-time embeddings, a quantizable encoder."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch import Tensor
from torch.ao.quantization import DeQuantStub, QuantStub

ACT2CLS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


@dataclass
class Wav2Vec2Config:
    conv_dim: Tuple[int, ...] = (16, 16, 16)
    conv_kernel: Tuple[int, ...] = (10, 3, 3)
    conv_stride: Tuple[int, ...] = (5, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    hidden_size: int = 32
    num_conv_pos_embeddings: int = 8
    num_conv_pos_embedding_groups: int = 4
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    mask_time_prob: float = 0.05


class Wav2Vec2NoLayerNormConvLayer(nn.Module):
    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__()
        self.in_conv_dim = config.conv_dim[layer_id - 1] if layer_id > 0 else 1
        self.out_conv_dim = config.conv_dim[layer_id]
        self.conv = nn.Conv1d(self.in_conv_dim, self.out_conv_dim, config.conv_kernel[layer_id], config.conv_stride[layer_id], bias=config.conv_bias)
        self.activation = ACT2CLS[config.feat_extract_activation]()

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.activation(self.conv(hidden_states))


class Wav2Vec2LayerNormConvLayer(Wav2Vec2NoLayerNormConvLayer):
    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__(config, layer_id)
        self.layer_norm = nn.LayerNorm(self.out_conv_dim, elementwise_affine=True)

    def forward(self, hidden_states: Tensor) -> Tensor:
        hidden_states = self.conv(hidden_states)
        hidden_states = self.layer_norm(hidden_states.transpose(-2, -1)).transpose(-2, -1)
        return self.activation(hidden_states)


class Wav2Vec2GroupNormConvLayer(Wav2Vec2NoLayerNormConvLayer):
    def __init__(self, config: Wav2Vec2Config, layer_id: int = 0) -> None:
        super().__init__(config, layer_id)
        self.layer_norm = nn.GroupNorm(num_groups=self.out_conv_dim, num_channels=self.out_conv_dim, affine=True)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.activation(self.layer_norm(self.conv(hidden_states)))


class Wav2Vec2FeatureEncoder(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        if config.feat_extract_norm == "group":
            conv_layers = [Wav2Vec2GroupNormConvLayer(config, 0)] + [Wav2Vec2NoLayerNormConvLayer(config, i) for i in range(1, len(config.conv_dim))]
        else:
            conv_layers = [Wav2Vec2LayerNormConvLayer(config, i) for i in range(len(config.conv_dim))]
        self.conv_layers = nn.ModuleList(conv_layers)
        self.gradient_checkpointing = False
        self._requires_grad = True

    def _freeze_parameters(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        self._requires_grad = False

    def forward(self, input_values: Tensor) -> Tensor:
        hidden_states = input_values[:, None]
        if self._requires_grad and self.training:
            hidden_states.requires_grad = True
        for conv_layer in self.conv_layers:
            if self._requires_grad and self.gradient_checkpointing and self.training:
                hidden_states = torch.utils.checkpoint.checkpoint(conv_layer, hidden_states, use_reentrant=False)
            else:
                hidden_states = conv_layer(hidden_states)
        return hidden_states


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        k = config.num_conv_pos_embeddings
        conv = nn.Conv1d(config.hidden_size, config.hidden_size, kernel_size=k, padding=k // 2, groups=config.num_conv_pos_embedding_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_pad_remove = 1 if k % 2 == 0 else 0
        self.activation = ACT2CLS[config.feat_extract_activation]()

    def forward(self, hidden_states: Tensor) -> Tensor:
        hidden_states = self.conv(hidden_states.transpose(1, 2))
        if self.num_pad_remove > 0:
            hidden_states = hidden_states[:, :, : -self.num_pad_remove]
        return self.activation(hidden_states).transpose(1, 2)


class Wav2Vec2Model(nn.Module):
    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = Wav2Vec2FeatureEncoder(config)
        self.feature_layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.feature_projection = nn.Linear(config.conv_dim[-1], config.hidden_size)
        self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size).uniform_()) if config.mask_time_prob > 0.0 else None
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def _get_feat_extract_output_lengths(self, input_length: int) -> int:
        for kernel_size, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            input_length = (input_length - kernel_size) // stride + 1
        return input_length

    def forward(self, input_values: Tensor, input_lengths: Optional[List[int]] = None, mask_time_indices: Optional[Tensor] = None, return_dict: bool = True) -> Union[Dict[str, Tensor], Tuple[Tensor, Tensor]]:
        extract_features = self.feature_layer_norm(self.feature_extractor(input_values).transpose(1, 2))
        hidden_states = self.dropout(self.feature_projection(extract_features))
        if mask_time_indices is not None:
            hidden_states[mask_time_indices] = self.masked_spec_embed  # expect: QL504
        if input_lengths is not None:
            frames = torch.tensor([self._get_feat_extract_output_lengths(n) for n in input_lengths])
            padding_mask = torch.arange(hidden_states.shape[1])[None, :] >= frames[:, None]
            hidden_states = hidden_states.masked_fill(padding_mask[..., None], 0.0)
        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)  # expect: QL301
        hidden_states = self.dropout(self.layer_norm(hidden_states))
        if not return_dict:
            return hidden_states, extract_features
        return {"last_hidden_state": hidden_states, "extract_features": extract_features}


class QuantizableFeatureEncoder(nn.Module):
    """The convolutional encoder in int8: Conv1d, GroupNorm and GELU all have quantized kernels."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.encoder = Wav2Vec2FeatureEncoder(config)
        self.dequant = DeQuantStub()

    def forward(self, input_values: Tensor) -> Tensor:
        return self.dequant(self.encoder(self.quant(input_values)))
