"""Static post-training quantization as the PyTorch tutorial (and its many copies) runs it: one
module-level script, a small ConvNet with a fuse_model method, a DataLoader for calibration,
then the variants people try after the first run (per-channel, a reloaded model, a quick run),
and a short QAT fine-tune at the end."""
import copy
import os
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    convert,
    fuse_modules,
    fuse_modules_qat,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_planes, out_planes, stride=1):
        super().__init__(
            nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU(inplace=False),
        )


class TinyNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(ConvBNReLU(3, 8), ConvBNReLU(8, 16, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.pool(self.features(x))
        x = torch.flatten(x, 1)
        return self.dequant(self.classifier(x))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        for m in self.modules():
            if type(m) is ConvBNReLU:
                fuse(m, ["0", "1", "2"], inplace=True)


def evaluate(model, data_loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for image, target in data_loader:
            correct += (model(image).argmax(1) == target).sum().item()
            total += target.numel()
    return correct / total


def calibrate(model, data_loader, num_batches=4):
    model.eval()
    with torch.no_grad():
        for i, (image, _) in enumerate(data_loader):
            model(image)
            if i + 1 >= num_batches:
                break


images = torch.randn(64, 3, 16, 16)
targets = torch.randint(0, 10, (64,))
data_loader = DataLoader(TensorDataset(images, targets), batch_size=16, shuffle=True)
data_loader_test = DataLoader(TensorDataset(images[:32], targets[:32]), batch_size=16)
saved_model_dir = tempfile.mkdtemp()
float_model_file = os.path.join(saved_model_dir, "tinynet_fp32.pth")

# A few float steps stand in for the pretrained checkpoint.
float_model = TinyNet()
optimizer = torch.optim.SGD(float_model.parameters(), lr=0.05, momentum=0.9)
for image, target in data_loader:
    loss = F.cross_entropy(float_model(image), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
torch.save(float_model.state_dict(), float_model_file)

float_model.eval()
float_model.fuse_model()
print("float accuracy", evaluate(float_model, data_loader_test))

# 1. Per-tensor baseline, calibrated on the training loader.
myModel = copy.deepcopy(float_model)
myModel.qconfig = torch.ao.quantization.default_qconfig
prepare(myModel, inplace=True)
calibrate(myModel, data_loader)
convert(myModel, inplace=True)
print("int8 per-tensor accuracy", evaluate(myModel, data_loader_test))
with torch.no_grad():
    myModel(torch.zeros(1, 3, 16, 16))

# 2. Per-channel x86 qconfig. prepare returns a prepared copy here.
per_channel_model = copy.deepcopy(float_model)
per_channel_model.qconfig = get_default_qconfig("x86")
prepared_per_channel = prepare(per_channel_model)
calibrate(per_channel_model, data_loader)
quantized_per_channel = convert(prepared_per_channel)  # expect: QL606
print("int8 per-channel accuracy", evaluate(quantized_per_channel, data_loader_test))

# 3. Reload the checkpoint and quantize again from scratch.
reloaded = TinyNet()
reloaded.load_state_dict(torch.load(float_model_file))
reloaded.eval()
reloaded.fuse_model()
prepared_reloaded = prepare(reloaded)  # expect: QL605
calibrate(prepared_reloaded, data_loader)
quantized_reloaded = convert(prepared_reloaded)
print("reloaded accuracy", evaluate(quantized_reloaded, data_loader_test))

# 4. A quick run without the data.
quick_model = copy.deepcopy(float_model)
quick_model.qconfig = get_default_qconfig("x86")
prepare(quick_model, inplace=True)
with torch.no_grad():
    quick_model(torch.ones(8, 3, 16, 16))  # expect: QL607
quick_int8 = convert(quick_model)
print("quick accuracy", evaluate(quick_int8, data_loader_test))

# 5. QAT fine-tune starting from the checkpoint; the optimizer is built before prepare_qat
# on the same model, which is prepared in place with the default fake-quant qconfig.
qat_model = TinyNet()
qat_model.load_state_dict(torch.load(float_model_file))
qat_model.train()
qat_model.fuse_model(is_qat=True)
qat_optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.001, momentum=0.9)
qat_model.qconfig = get_default_qat_qconfig("x86")
prepare_qat(qat_model, inplace=True)
for epoch in range(2):
    qat_model.train()
    for image, target in data_loader:
        loss = F.cross_entropy(qat_model(image), target)
        qat_optimizer.zero_grad()
        loss.backward()
        qat_optimizer.step()
    if epoch >= 1:
        qat_model.apply(torch.ao.quantization.disable_observer)
qat_model.eval()
quantized_qat = convert(qat_model)
print("QAT int8 accuracy", evaluate(quantized_qat, data_loader_test))
