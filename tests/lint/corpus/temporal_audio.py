"""Temporal convolution networks and an audio front end: causal padding,
dilation arithmetic, chomping, gated WaveNet units and log-mel features."""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    mel_max = 2595.0 * math.log10(1.0 + sample_rate / 2 / 700.0)
    hz = 700.0 * (10 ** (torch.linspace(0, mel_max, n_mels + 2) / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_freqs)[:, None]
    lower = (bins - hz[:-2]) / (hz[1:-1] - hz[:-2])
    upper = (hz[2:] - bins) / (hz[2:] - hz[1:-1])
    return torch.clamp(torch.minimum(lower, upper), min=0.0)


class Chomp1d(nn.Module):
    def __init__(self, chomp_size: int):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, : -self.chomp_size].contiguous() if self.chomp_size else x


class TemporalBlock(nn.Module):
    def __init__(self, n_in, n_out, kernel_size, dilation, dropout=0.2):
        super().__init__()
        padding = (kernel_size - 1) * dilation
        conv1 = nn.Conv1d(n_in, n_out, kernel_size, padding=padding, dilation=dilation)
        conv2 = nn.Conv1d(n_out, n_out, kernel_size, padding=padding, dilation=dilation)
        act = nn.ReLU()
        self.net = nn.Sequential(
            conv1, Chomp1d(padding), act, nn.Dropout(dropout),
            conv2, Chomp1d(padding), act, nn.Dropout(dropout),  # expect: QL402
        )
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)  # expect: QL301


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs: int, channels: List[int], kernel_size: int = 2, dropout: float = 0.2):
        super().__init__()
        layers = []
        for i, out_ch in enumerate(channels):
            in_ch = num_inputs if i == 0 else channels[i - 1]
            layers.append(TemporalBlock(in_ch, out_ch, kernel_size, dilation=2 ** i, dropout=dropout))
        self.network = nn.Sequential(*layers)
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2 ** len(channels) - 1)

    def forward(self, x):
        return self.network(x)


class GatedResidual(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.left_pad = dilation
        self.filter = nn.Conv1d(channels, channels, 2, dilation=dilation)
        self.gate = nn.Conv1d(channels, channels, 2, dilation=dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        h = F.pad(x, (self.left_pad, 0))
        z = torch.tanh(self.filter(h)) * torch.sigmoid(self.gate(h))  # expect: QL301
        return x + self.res(z), self.skip(z)  # expect: QL301


class WaveNetStack(nn.Module):
    def __init__(self, channels: int = 8, layers_per_stack: int = 3, stacks: int = 2):
        super().__init__()
        dilations = [2 ** (i % layers_per_stack) for i in range(layers_per_stack * stacks)]
        self.layers = nn.ModuleList(GatedResidual(channels, d) for d in dilations)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        skip_sum = 0
        for layer in self.layers:
            x, skip = layer(x)
            skip_sum = skip_sum + skip  # expect: QL301
        return self.out(F.relu(skip_sum))  # expect: QL101


class LogMelFrontend(nn.Module):
    def __init__(self, n_fft: int = 64, hop: int = 16, n_mels: int = 16, sample_rate: int = 8000):
        super().__init__()
        self.n_fft = n_fft
        self.hop = hop
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("mel_fb", mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate))
        self.register_buffer("preemphasis", torch.tensor([[[-0.97, 1.0]]]))

    def forward(self, wav: torch.Tensor, lengths: Optional[List[int]] = None) -> torch.Tensor:
        wav = F.conv1d(F.pad(wav.unsqueeze(1), (1, 0), mode="replicate"), self.preemphasis).squeeze(1)  # expect: QL103
        pad = self.n_fft // 2
        wav = F.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        power = spec.abs() ** 2  # expect: QL104
        logmel = torch.log(torch.matmul(power.transpose(1, 2), self.mel_fb).clamp(min=1e-10))  # expect: QL104, QL302
        logmel = (logmel - logmel.mean(1, keepdim=True)) / (logmel.std(1, keepdim=True) + 1e-5)  # expect: QL301, QL303
        if lengths is not None:
            frames = [(n + 2 * pad - self.n_fft) // self.hop + 1 for n in lengths]
            valid = torch.arange(logmel.size(1))[None, :] < torch.tensor(frames)[:, None]
            logmel = logmel.masked_fill(~valid[:, :, None], 0.0)
        return logmel


class DilatedResBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.bn = nn.BatchNorm1d(channels)
        self.act = nn.ReLU()

    def _pad_same(self, x):
        total = self.dilation * (self.kernel_size - 1)
        return F.pad(x, (total // 2, total - total // 2))

    def forward(self, x):
        y = self.act(self.bn(self.conv(self._pad_same(x))))
        return self.act(y + x)  # expect: QL301, QL401


class KeywordSpotter(nn.Module):
    def __init__(self, n_mels: int = 16, channels: int = 16, num_classes: int = 4, dilations=(1, 2, 4)):
        super().__init__()
        self.frontend = LogMelFrontend(n_mels=n_mels)
        self.inp = nn.Conv1d(n_mels, channels, 1)
        self.blocks = nn.ModuleList(DilatedResBlock(channels, 3, d) for d in dilations)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, wav, lengths: Optional[List[int]] = None):
        x = self.inp(self.frontend(wav, lengths).transpose(1, 2))
        for i in range(len(self.blocks)):
            x = self.blocks[i](x)
        return F.log_softmax(self.classifier(torch.amax(x, dim=-1)), dim=-1)  # expect: QL102, QL104
