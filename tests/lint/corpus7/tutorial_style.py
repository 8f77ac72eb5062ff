"""Eager-mode quantization as tutorials and forum threads write it: the tutorial's M, a first
layer kept float, CIFAR ResNet option-A shortcuts through a LambdaLayer, blocks that each
carry their own stubs, a char-RNN cell built from Linear layers; and the mistakes people post
about (a QuantStub built but not called, stubs in both the blocks and the stack, a residual
taken before the DeQuantStub, a temperature or a hidden state that never passed a stub)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(1, 1, 1)
        self.bn = nn.BatchNorm2d(1)
        self.relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.conv(x)
        x = self.bn(x)
        x = self.relu(x)
        x = self.dequant(x)
        return x

    def fuse_model(self):
        fuse_modules(self, [["conv", "bn", "relu"]], inplace=True)


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()  # expect: QL704
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 16 * 16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))  # allow: QL701
        x = self.fc(torch.flatten(x, 1))
        return self.dequant(x)


class FloatStemNet(nn.Module):
    """The first convolution is the most sensitive layer: it stays float."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU())
        self.stem.qconfig = None
        self.quant = QuantStub()
        self.body = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(self.stem(x))
        return self.dequant(self.fc(self.body(x)))


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class BasicBlockA(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.skip = FloatFunctional()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.skip.add(out, self.shortcut(x)))


class CifarResNetA(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlockA(16, 16)
        self.layer2 = BasicBlockA(16, 32, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        out = self.layer2(self.layer1(self.stem(self.quant(x))))
        return self.dequant(self.linear(torch.flatten(self.pool(out), 1)))


class ConvBlockWithStubs(nn.Module):
    """Each block quantizes and dequantizes on its own, so it can be benchmarked alone."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)  # expect: QL703
        return self.dequant(self.relu(self.conv(x)))


class StackedBlocks(nn.Module):
    """The stack got stubs of its own too."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.block1 = ConvBlockWithStubs(3, 8)
        self.block2 = ConvBlockWithStubs(8, 8)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.block2(self.block1(x)))


class StackedBlocksFloatGlue(nn.Module):
    """Leaves quantization to the blocks."""

    def __init__(self):
        super().__init__()
        self.block1 = ConvBlockWithStubs(3, 8)
        self.block2 = ConvBlockWithStubs(8, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.flatten(self.pool(self.block2(self.block1(x))), 1)


class ResidualDenoiser(nn.Module):
    """Predicts the noise; the subtraction from the noisy input runs in float."""

    def __init__(self, ch: int = 16):
        super().__init__()
        self.quant = QuantStub()
        self.body = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 3, 3, padding=1))
        self.dequant = DeQuantStub()

    def forward(self, x):
        noise = self.dequant(self.body(self.quant(x)))
        return x - noise


class ResidualDenoiserLateDequant(ResidualDenoiser):
    def forward(self, x):
        noise = self.body(self.quant(x))
        return self.dequant(x - noise)  # expect: QL702, QL301


class CalibratedClassifier(nn.Module):
    """Temperature scaling with a per-sample temperature given by the caller."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x, temperature):
        logits = self.fc(self.features(self.quant(x)))
        return self.dequant(logits / temperature)  # expect: QL702, QL303


class CharRNNCell(nn.Module):
    def __init__(self, vocab: int = 32, hidden: int = 32):
        super().__init__()
        self.quant = QuantStub()
        self.i2h = nn.Linear(vocab, hidden)
        self.h2h = nn.Linear(hidden, hidden)
        self.add = FloatFunctional()
        self.act = nn.ReLU()
        self.h2o = nn.Linear(hidden, vocab)
        self.dequant_out = DeQuantStub()
        self.dequant_h = DeQuantStub()

    def forward(self, x, hidden):
        h = self.act(self.add.add(self.i2h(self.quant(x)), self.h2h(hidden)))  # expect: QL701
        return self.dequant_out(self.h2o(h)), self.dequant_h(h)


class QuantizableCharRNNCell(CharRNNCell):
    def __init__(self, vocab: int = 32, hidden: int = 32):
        super().__init__(vocab, hidden)
        self.quant_h = QuantStub()

    def forward(self, x, hidden):
        h = self.act(self.add.add(self.i2h(self.quant(x)), self.h2h(self.quant_h(hidden))))
        return self.dequant_out(self.h2o(h)), self.dequant_h(h)


class CharRNN(nn.Module):
    """Unrolls the cell; the hidden state goes back to it in float at every step."""

    def __init__(self, vocab: int = 32, hidden: int = 32):
        super().__init__()
        self.hidden = hidden
        self.cell = QuantizableCharRNNCell(vocab, hidden)

    def forward(self, xs):
        h = torch.zeros(xs.shape[1], self.hidden)
        outs = []
        for t in range(xs.shape[0]):
            out, h = self.cell(xs[t], h)  # expect: QL401
            outs.append(out)
        return torch.stack(outs)
