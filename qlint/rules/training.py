"""QL6xx: the quantization script, step by step (fuse, qconfig, prepare, calibrate or train,
convert). Each rule is a query over the script interpreter (`qlint/semantic/pipeline.py`),
which follows every model through functions, helpers, copies and wrappers."""
from __future__ import annotations

from qlint.registry import ERROR, WARNING, Rule, register
from qlint.rules.base import Report
from qlint.semantic import pipeline

_IMPORTS = ("import copy\n\nimport torch\nimport torch.nn as nn\nfrom torch.ao.quantization import (\n"
            "    DeQuantStub, QuantStub, convert, fuse_modules, fuse_modules_qat, get_default_qat_qconfig,\n"
            "    get_default_qconfig, prepare, prepare_qat)\n\n\n")
_NET = ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        self.bn = nn.BatchNorm2d(8)\n        self.relu = nn.ReLU()\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        return self.dequant(self.relu(self.bn(self.conv(self.quant(x)))))\n\n\n")
_HEADER = _IMPORTS + _NET
_TRAIN = ("def train(model, optimizer, batches):\n    model.train()\n    for images in batches:\n"
          "        optimizer.zero_grad()\n        model(images).square().mean().backward()\n"
          "        optimizer.step()\n\n\n")


def _reports(model, kind: str, message: str):
    for hazard in pipeline.script_hazards(model, kind):
        yield Report(hazard.node, message, lines=dict(hazard.lines))


@register
class OptimizerBeforePrepareQat(Rule):
    code = "QL601"
    name = "optimizer-before-prepare-qat"
    severity = ERROR
    summary = "An optimizer built before prepare_qat and used after it, holding what the prepared model does not train"
    explanation = (
        "`prepare_qat(model)` prepares a deep copy (inplace=False is the default), and a model "
        "prepared after `copy.deepcopy` is a copy too: an optimizer built on the float model holds "
        "the float model's parameters, so training the prepared copy with it updates nothing the "
        "copy uses. With a learnable fake-quant qconfig (`_LearnableFakeQuantize`), prepare_qat "
        "creates new scale and zero_point nn.Parameters that an optimizer built before never sees. "
        "Measured on torch 2.13: `prepare_qat(model, inplace=True)` with a fake-quant qconfig that "
        "is not learnable (the default) creates no parameter, so an optimizer built before it on "
        "that same model holds every parameter; qlint stays silent there.")
    fix = "Build the optimizer (and its scheduler) after prepare_qat, from the prepared model."
    valid = (
        _HEADER + _TRAIN + "def finetune(model, batches):\n    model.qconfig = get_default_qat_qconfig('x86')\n"
        "    model = prepare_qat(model.train())\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "    train(model, optimizer, batches)\n    return model\n",
        _HEADER + _TRAIN + "def finetune_in_place(model, batches):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "    model.qconfig = get_default_qat_qconfig('x86')\n    prepare_qat(model.train(), inplace=True)\n"
        "    train(model, optimizer, batches)\n    return model\n",
        _HEADER + _TRAIN + "def side_by_side(float_model, batches):\n"
        "    float_optimizer = torch.optim.SGD(float_model.parameters(), lr=0.01)\n"
        "    qat_model = copy.deepcopy(float_model)\n    qat_model.qconfig = get_default_qat_qconfig('x86')\n"
        "    prepare_qat(qat_model.train(), inplace=True)\n"
        "    qat_optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.01)\n"
        "    for model, optimizer in ((float_model, float_optimizer), (qat_model, qat_optimizer)):\n"
        "        train(model, optimizer, batches)\n    return float_model, qat_model\n",
    )
    invalid = (
        _HEADER + _TRAIN + "def finetune(model, batches):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: QL601\n"
        "    model.qconfig = get_default_qat_qconfig('x86')\n    model = prepare_qat(model.train())\n"
        "    train(model, optimizer, batches)\n    return model\n",
        _HEADER + _TRAIN + "def finetune_copy(model, batches):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: QL601\n"
        "    qat_model = copy.deepcopy(model)\n    qat_model.qconfig = get_default_qat_qconfig('x86')\n"
        "    prepare_qat(qat_model.train(), inplace=True)\n    train(qat_model, optimizer, batches)\n"
        "    return qat_model\n",
        _HEADER + _TRAIN + "from torch.ao.quantization import QConfig\n"
        "from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize\n"
        "from torch.ao.quantization.observer import MovingAverageMinMaxObserver as Observer\n\n"
        "LEARNABLE = QConfig(\n"
        "    activation=_LearnableFakeQuantize.with_args(observer=Observer, quant_min=0, quant_max=255),\n"
        "    weight=_LearnableFakeQuantize.with_args(observer=Observer, quant_min=-128, quant_max=127,\n"
        "                                            dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))\n\n\n"
        "def finetune_learnable(model, batches):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: QL601\n"
        "    model.qconfig = LEARNABLE\n    prepare_qat(model.train(), inplace=True)\n"
        "    train(model, optimizer, batches)\n    return model\n",
        _HEADER + _TRAIN + "import functools\n\nAdamW = functools.partial(torch.optim.AdamW, lr=1e-3)\n"
        "make_sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)\n\n\n"
        "def groups(m):\n    return [{'params': p} for _, p in m.named_parameters()]\n\n\n"
        "def prepare_for_qat(m):\n    m.qconfig = get_default_qat_qconfig('x86')\n"
        "    return prepare_qat(m.train())\n\n\n"
        "def finetune_with_helpers(model, batches):\n    first = AdamW(groups(model))  # expect: QL601\n"
        "    second = make_sgd(model)  # expect: QL601\n    model = prepare_for_qat(model)\n"
        "    train(model, first, batches)\n    train(model, second, batches)\n    return model\n",
    )

    def check(self, model):
        for hazard in pipeline.script_hazards(model, pipeline.STALE_OPTIMIZER):
            if hazard.detail == "learnable":
                message = ("this optimizer is built before prepare_qat (line {prepare}) adds the learnable "
                           "fake-quant scale and zero_point parameters, which it never trains. Build it "
                           "after prepare_qat, from the prepared model.")
            else:
                message = ("this optimizer holds the parameters of the model that prepare_qat (line {prepare}) "
                           "prepared a copy of, and it is used to train after that: the prepared model's "
                           "parameters are not in it. Build it after prepare_qat, from the prepared model.")
            yield Report(hazard.node, message, lines=dict(hazard.lines))


@register
class EvalFusionBeforeQat(Rule):
    code = "QL602"
    name = "eval-fusion-before-qat"
    severity = WARNING
    summary = "Eval-mode fusion (fuse_modules) of a model that prepare_qat later trains"
    explanation = (
        "`fuse_modules` folds BatchNorm into the conv weights for inference: QAT then trains "
        "without batch statistics. `fuse_modules_qat` keeps BN as a trainable part of "
        "ConvBn2d, which QAT expects (and `freeze_bn_stats` can act on). qlint follows the fused "
        "model to prepare_qat through return values (`fuse_modules(..., inplace=False)`), "
        "copies, wrappers (QuantWrapper, a class that stores the model) and the model's own "
        "fuse method, evaluated with the call's arguments.")
    fix = "Use fuse_modules_qat before prepare_qat (for a fuse method: its QAT variant, e.g. is_qat=True)."
    valid = (
        _HEADER + "def prepare_model(model):\n    model.train()\n"
        "    fuse_modules_qat(model, [['conv', 'bn', 'relu']], inplace=True)\n"
        "    model.qconfig = get_default_qat_qconfig('x86')\n    return prepare_qat(model)\n",
    )
    invalid = (
        _HEADER + "def prepare_model(model):\n    model.eval()\n"
        "    fused = fuse_modules(model, [['conv', 'bn', 'relu']])  # expect: QL602\n"
        "    fused.qconfig = get_default_qat_qconfig('x86')\n    return prepare_qat(fused.train())\n",
        _IMPORTS + "class FusableNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3)\n        self.bn = nn.BatchNorm2d(8)\n        self.relu = nn.ReLU()\n\n"
        "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
        "    def fuse_model(self, is_qat=False):\n        fuse = fuse_modules_qat if is_qat else fuse_modules\n"
        "        fuse(self, [['conv', 'bn', 'relu']], inplace=True)\n\n\n"
        "def prepare_model():\n    model = FusableNet().eval()\n    model.fuse_model()  # expect: QL602\n"
        "    wrapped = torch.ao.quantization.QuantWrapper(copy.deepcopy(model))\n"
        "    wrapped.qconfig = get_default_qat_qconfig('x86')\n    return prepare_qat(wrapped.train())\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.EVAL_FUSION_BEFORE_QAT,
                            "this fusion (fuse_modules, eval mode) folds BatchNorm for inference, but the "
                            "model is trained with prepare_qat at line {prepare}: QAT trains without "
                            "batch statistics. Fuse with fuse_modules_qat, the model in train mode.")


@register
class FuseInTrainMode(Rule):
    code = "QL603"
    name = "fuse-in-train-mode"
    severity = ERROR
    summary = "fuse_modules (eval fusion) of a model in train mode: raises `Fusion only for eval!`"
    explanation = (
        "`fuse_modules` folds BatchNorm into the preceding conv or linear with the statistics "
        "it has, which only makes sense for inference: on a model in train mode (a new "
        "module, or after `.train()`) torch 2.13 raises `AssertionError: Fusion only for eval!` "
        "for every group with a BatchNorm. Reported on the fusion call, or on the "
        "`model.fuse_model()` call when the model's own method fuses; groups of conv-relu or "
        "linear-relu alone fuse in either mode.")
    fix = "Call model.eval() before fuse_modules, or use fuse_modules_qat for quantization-aware training."
    valid = (
        _HEADER + "def fused_for_ptq():\n    model = Net()\n    model.eval()\n"
        "    return fuse_modules(model, [['conv', 'bn', 'relu']])\n",
        _HEADER + "def fused_for_qat():\n    model = Net()\n"
        "    return fuse_modules_qat(model, [['conv', 'bn', 'relu']])\n",
    )
    invalid = (
        _HEADER + "def fused_for_ptq():\n    model = Net()\n"
        "    return fuse_modules(model, [['conv', 'bn', 'relu']])  # expect: QL603\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.FUSE_IN_TRAIN_MODE,
                            "fuse_modules folds BatchNorm for inference and raises `Fusion only for eval!` "
                            "on a model in train mode, as this one is here. Call model.eval() first, or "
                            "use fuse_modules_qat for quantization-aware training.")


@register
class PtqQconfigForQat(Rule):
    code = "QL604"
    name = "ptq-qconfig-for-qat"
    severity = ERROR
    summary = "prepare_qat on a model whose qconfig is a post-training (observer) one"
    explanation = (
        "A PTQ qconfig (`get_default_qconfig`, `default_qconfig`, a QConfig of plain observers) "
        "gives prepare_qat observers where QAT needs fake-quant: measured on torch 2.13, the "
        "weights get a PerChannelMinMaxObserver and the activations a HistogramObserver, so "
        "training never sees quantization error and QAT trains the float model.")
    fix = "Use a QAT qconfig: get_default_qat_qconfig(backend), default_qat_qconfig, or FakeQuantize parts."
    valid = (
        _HEADER + "def prepare_model(model):\n    model.qconfig = get_default_qat_qconfig('x86')\n"
        "    return prepare_qat(model.train())\n",
    )
    invalid = (
        _HEADER + "def prepare_model(model):\n    model.qconfig = get_default_qconfig('x86')\n"
        "    return prepare_qat(model.train())  # expect: QL604\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.PTQ_QCONFIG_FOR_QAT,
                            "this model's qconfig is a post-training one (observers): prepare_qat inserts "
                            "no fake-quant and QAT trains in float. Use get_default_qat_qconfig(...) or "
                            "another fake-quant qconfig.")


@register
class PrepareWithoutQconfig(Rule):
    code = "QL605"
    name = "prepare-without-qconfig"
    severity = ERROR
    summary = "prepare or prepare_qat on a model that got no qconfig: nothing is quantized"
    explanation = (
        "`prepare` inserts observers only where a module has a qconfig (its own or its "
        "parent's). A model built in the script from a class that sets none, and given none "
        "before prepare, gets no observer: measured on torch 2.13, prepare only warns "
        "(\"None of the submodule got qconfig applied\") and convert then leaves every module "
        "float. Another instance of the same class getting a qconfig does not count.")
    fix = "Set model.qconfig (e.g. get_default_qconfig(backend)) before prepare."
    valid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepare(model, inplace=True)\n"
        "    for images in batches:\n        model(images)\n    return convert(model)\n",
    )
    invalid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    prepare(model, inplace=True)  # expect: QL605\n"
        "    for images in batches:\n        model(images)\n    return convert(model)\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.PREPARE_WITHOUT_QCONFIG,
                            "this model has no qconfig (none assigned, and its classes set none): prepare "
                            "inserts no observer and convert leaves it float. Set model.qconfig before "
                            "prepare.")


@register
class ConvertWithoutCalibration(Rule):
    code = "QL606"
    name = "convert-without-calibration"
    severity = ERROR
    summary = "convert of a model prepared with observers (PTQ) that ran no forward pass after prepare"
    explanation = (
        "Observers learn activation ranges from the forward passes between prepare and convert. "
        "With none, measured on torch 2.13, convert only warns (\"must run observer before "
        "calling calculate_qparams. Returning default values\") and every activation gets "
        "scale 1.0 and zero point 0: the int8 model's outputs are garbage. Calibrating a "
        "different model (the float one, when prepare made a copy) counts as none. A model "
        "given observers by prepare_qat with a PTQ qconfig (QL604) counts as PTQ-prepared.")
    fix = "Run the prepared model on representative data (a few batches) before convert."
    valid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepared = prepare(model)\n"
        "    for images in batches:\n        prepared(images)\n    return convert(prepared)\n",
    )
    invalid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepared = prepare(model)\n"
        "    for images in batches:\n        model(images)\n    return convert(prepared)  # expect: QL606\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.CONVERT_WITHOUT_CALIBRATION,
                            "the model prepared at line {prepare} ran no forward pass before this convert: "
                            "its observers keep their defaults (scale 1.0, zero point 0). Calibrate the "
                            "prepared model on representative data first.")


@register
class ConstantCalibrationData(Rule):
    code = "QL607"
    name = "constant-calibration-data"
    severity = WARNING
    summary = "Every calibration pass between prepare and convert is fed constant tensors"
    explanation = (
        "Observers set each activation's range from what calibration shows them. Tensors of one "
        "value (`torch.ones`, `zeros`, `full`, a literal) give a degenerate range: measured on "
        "torch 2.13, the input observer records min == max, and a model calibrated on "
        "`torch.ones` loses most of its accuracy on real inputs. Reported on the forward (or the "
        "call of the helper that runs it) that feeds the constant data, when every forward "
        "pass before convert does.")
    fix = "Calibrate on representative inputs: batches of the training or validation data."
    valid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepare(model, inplace=True)\n"
        "    for images in batches:\n        model(images)\n    return convert(model)\n",
    )
    invalid = (
        _HEADER + "def quantize():\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepare(model, inplace=True)\n"
        "    model(torch.ones(8, 3, 16, 16))  # expect: QL607\n    return convert(model)\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.CONSTANT_CALIBRATION,
                            "every calibration pass before convert (line {convert}) is fed constant "
                            "tensors like this one: the observers see one value and set a degenerate "
                            "range. Calibrate on representative data.")


@register
class PrepareQatInEvalMode(Rule):
    code = "QL608"
    name = "prepare-qat-in-eval-mode"
    severity = ERROR
    summary = "prepare_qat on a model in eval mode: raises `prepare_qat only works on models in training mode`"
    explanation = (
        "prepare_qat checks the model's mode before anything else: measured on torch 2.13, a "
        "model in eval mode (after `.eval()`, often left from an eval-mode fusion) raises "
        "`AssertionError: prepare_qat only works on models in training mode`. The rule is off "
        "by default until a labeled corpus shows its precision: enable it with "
        "`--extend-select QL608`.")
    fix = "Call model.train() before prepare_qat."
    opt_in = True
    valid = (
        _HEADER + "def prepare_model():\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qat_qconfig('x86')\n    return prepare_qat(model.train())\n",
    )
    invalid = (
        _HEADER + "def prepare_model():\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qat_qconfig('x86')\n    return prepare_qat(model)  # expect: QL608\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.PREPARE_QAT_IN_EVAL_MODE,
                            "this model is in eval mode here, and prepare_qat raises `prepare_qat only works "
                            "on models in training mode`. Call model.train() first.")


@register
class StepResultDiscarded(Rule):
    code = "QL609"
    name = "step-result-discarded"
    severity = ERROR
    summary = "fuse_modules, prepare, prepare_qat or convert without inplace=True, its result thrown away"
    explanation = (
        "With `inplace=False`, the default, these steps work on a deep copy and return it; the "
        "model given to them is left as it was. A call whose result is not used changes nothing: "
        "measured on torch 2.13, after `prepare(model)` the model has no observer and calibration "
        "observes nothing, after `convert(model)` it is still float (fake-quant or observers "
        "left in), after `fuse_modules(model, groups)` nothing is fused. The rule is off by "
        "default until a labeled corpus shows its precision: enable it with `--extend-select QL609`.")
    fix = "Use the returned model (`model = prepare(model)`), or pass inplace=True."
    opt_in = True
    valid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepare(model, inplace=True)\n"
        "    for images in batches:\n        model(images)\n    return convert(model)\n",
    )
    invalid = (
        _HEADER + "def quantize(batches):\n    model = Net().eval()\n"
        "    model.qconfig = get_default_qconfig('x86')\n    prepare(model)  # expect: QL609\n"
        "    for images in batches:\n        model(images)\n    convert(model)  # expect: QL609\n"
        "    return model\n",
    )

    def check(self, model):
        yield from _reports(model, pipeline.STEP_RESULT_DISCARDED,
                            "without inplace=True this step returns a changed copy, which is thrown away "
                            "here: the model itself is left as it was. Use the result "
                            "(`model = prepare(model)`) or pass inplace=True.")
