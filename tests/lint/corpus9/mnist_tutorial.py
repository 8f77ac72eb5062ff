"""A static-quantization tutorial for an MNIST-style model, as blog posts write it: the
model, subclasses from later sections (distillation, a two-stage variant), PTQ, a QAT
variant built from a fused copy, and a few shortcuts readers tried in the comments."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (DeQuantStub, QuantStub, convert, fuse_modules, get_default_qat_qconfig,
                                   get_default_qconfig, prepare, prepare_qat)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(32 * 5 * 5, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = (x - 0.1307) / 0.3081
        x = self.quant(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)  # expect: QL101, QL202
        x = F.max_pool2d(x, 2)
        x = self.relu2(self.bn2(self.conv2(x)))
        x = torch.flatten(F.max_pool2d(x, 2), 1)
        logits = self.fc2(self.relu3(self.fc1(x)))
        logits -= logits.max(dim=1, keepdim=True).values  # expect: QL203
        return self.dequant(logits)

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn1"], ["conv2", "bn2", "relu2"], ["fc1", "relu3"]], inplace=True)


class DistilledNet(Net):
    """The student of a distillation run: temperature-softened logits."""

    def __init__(self, temperature=4.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, x):
        x = self.quant(x)
        x = self.relu2(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 5), 1)
        x = self.fc2(self.relu3(self.fc1(x)))
        return self.dequant_stub(x / self.temperature)  # expect: QL303, QL705


class TwoStageNet(Net):
    """Features quantized, classifier meant to stay float, but nobody set its qconfig."""

    def forward(self, x):
        x = self.quant(x)
        x = self.relu2(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        x = self.dequant(torch.flatten(F.adaptive_avg_pool2d(x, 5), 1))
        x = self.relu3(self.fc1(x))  # expect: QL701
        return self.fc2(x)


def calibration_batches(n=4):
    return [torch.rand(8, 1, 28, 28) for _ in range(n)]


def ptq(model, data):
    model.eval()
    model.fuse_model()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    with torch.no_grad():
        for images in data:
            model(images)
    return convert(model)


def qat_from_fused_copy(model, data):
    model.eval()
    fused = fuse_modules(model, [["conv1", "bn1"], ["conv2", "bn2", "relu2"], ["fc1", "relu3"]])  # expect: QL602
    fused.qconfig = get_default_qat_qconfig("x86")
    qat = prepare_qat(fused.train())
    optimizer = torch.optim.SGD(qat.parameters(), lr=0.01)
    for images in data:
        optimizer.zero_grad()
        qat(images).logsumexp(1).mean().backward()
        optimizer.step()
    return convert(qat.eval())


def quick_export():
    model = Net()
    fuse_modules(model, [["conv1", "bn1"]], inplace=True)  # expect: QL603
    return torch.jit.script(model)


def qat_without_qconfig(data):
    model = Net().train()
    model = prepare_qat(model)  # expect: QL605
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for images in data:
        optimizer.zero_grad()
        model(images).logsumexp(1).mean().backward()
        optimizer.step()
    return convert(model.eval())


def convert_right_after_prepare():
    model = Net().eval()
    model.fuse_model()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    return convert(prepared)  # expect: QL606


if __name__ == "__main__":
    data = calibration_batches()
    quantized = ptq(Net(), data)
    print(quantized(data[0]).argmax(1))
