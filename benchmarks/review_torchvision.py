"""Review: torchvision's quantizable models through the runtime helpers (not run by CI).

torchvision needs its own environment (a CUDA build of torch that runs on CPU, 5.5 GB;
never in CI or the README):

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        torchao==0.18.0 libcst && /tmp/tv/bin/pip install --no-deps -e .
    /tmp/tv/bin/python benchmarks/review_torchvision.py case resnet18 x86 eager-qat
    /tmp/tv/bin/python benchmarks/review_torchvision.py isolate x86 [--steps 4]

``case MODEL ENGINE FLOW`` prints one JSON line: each helper's outcome and time on the
model (random weights) prepared by FLOW (eager-ptq, eager-qat: the quantizable model with
``fuse_model``; fx-ptq, pt2e-ptq, pt2e-qat: the float model), calibrated on 3 batches of 2
or trained 3 SGD steps.

``isolate ENGINE``: Inception3 QAT (4 SGD steps at 299x299), then each quantized conv of
the converted model run alone on the converted model's own input, against its frozen
fake-quant counterpart and against exact integer arithmetic on the same int8 values:
the largest difference in output steps, and the share of input values above 127.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import traceback
import warnings

import torch
import torch.ao.quantization as tq
import torch.nn.functional as F

from qlint.runtime import (
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_quant_state,
    quant_state,
)

EXTRA = {
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "googlenet": {"aux_logits": False, "init_weights": True},
}


def batches(count: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, size, size, generator=generator) for _ in range(count)]


def train(model, data, steps_done=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    for batch in data:
        loss = F.cross_entropy(model(batch), torch.randint(0, 1000, (batch.shape[0],)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def case(name: str, engine: str, flow: str) -> dict:
    import torchvision
    from torchvision.models import quantization

    torch.backends.quantized.engine = engine
    size = 299 if name == "inception_v3" else 224
    example = batches(1, size, seed=99)[0]
    result = {"model": name, "engine": engine, "flow": flow, "checks": {}}

    def check(label, run):
        start = time.time()
        try:
            run()
            outcome = {"ok": True}
        except AssertionError as error:
            outcome = {"ok": False, "message": str(error)[:2500]}
        except Exception as error:  # noqa: BLE001 - a crash of a helper is a finding too
            outcome = {"ok": False, "crash": "".join(traceback.format_exception(error))[-2500:]}
        result["checks"][label] = {**outcome, "s": round(time.time() - start, 1)}

    torch.manual_seed(0)
    start = time.time()
    qat = flow.endswith("qat")
    if flow.startswith("eager"):
        model = getattr(quantization, name)(weights=None, quantize=False, **EXTRA.get(name, {}))
        model.train(qat)
        model.fuse_model(is_qat=qat)
        model.qconfig = (tq.get_default_qat_qconfig if qat else tq.get_default_qconfig)(engine)
        (tq.prepare_qat if qat else tq.prepare)(model, inplace=True)
    else:
        model = getattr(torchvision.models, name)(weights=None, **EXTRA.get(name, {})).train(qat)
        if flow == "fx-ptq":
            from torch.ao.quantization.quantize_fx import prepare_fx

            model = prepare_fx(model, tq.get_default_qconfig_mapping(engine), (example,))
        else:
            from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e
            from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
                X86InductorQuantizer,
                get_default_x86_inductor_quantization_config,
            )

            graph = torch.export.export(model, (example,)).module()
            config = get_default_x86_inductor_quantization_config(is_qat=qat)
            model = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, X86InductorQuantizer().set_global(config))
    if qat:
        train(model, batches(3, size))
        if flow.startswith("pt2e"):
            import torchao.quantization.pt2e as pt2e

            pt2e.move_exported_model_to_eval(model)
        else:
            model.eval()
    else:
        with torch.no_grad():
            for batch in batches(3, size):
                model(batch)
    result["prepare_s"] = round(time.time() - start, 1)
    result["points"] = len(quant_state(model))
    if not flow.startswith("pt2e"):
        check("assert_fused", lambda: assert_fused(model, example))
    check("assert_quant_state", lambda: assert_quant_state(model, observers=True, fake_quant=qat))
    check("assert_calibrated(model, example)", lambda: assert_calibrated(model, example))
    check("assert_calibrated(model)", lambda: assert_calibrated(model))
    check("assert_parity", lambda: assert_parity(model, example))
    start = time.time()
    if flow.startswith("eager"):
        converted = tq.convert(copy.deepcopy(model).eval())
    elif flow == "fx-ptq":
        from torch.ao.quantization.quantize_fx import convert_fx

        converted = convert_fx(copy.deepcopy(model))
    else:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        converted = convert_pt2e(copy.deepcopy(model))
    result["convert_s"] = round(time.time() - start, 1)
    check("assert_converted", lambda: assert_converted(converted))
    if flow.startswith("pt2e"):
        check("assert_fused", lambda: assert_fused(converted, example))
    return result


def isolate(engine: str, steps: int) -> None:
    from torchvision.models import quantization

    from qlint.runtime import _twins
    from qlint.runtime._modules import is_quantized_module

    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    model = quantization.inception_v3(weights=None, quantize=False, **EXTRA["inception_v3"])
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = tq.get_default_qat_qconfig(engine)
    tq.prepare_qat(model, inplace=True)
    train(model, batches(steps, 299))
    model.eval()
    example = batches(1, 299, seed=99)[0]
    twins = _twins.Twins(model, _twins.PREPARED)
    inputs, outputs = {}, {}
    converted = dict(twins.converted.named_modules())
    reference = dict(twins.reference.named_modules())
    names = [
        name for name, module in converted.items()
        if is_quantized_module(module) and hasattr(module, "stride")
    ]
    for name in names:
        converted[name].register_forward_pre_hook(lambda m, args, name=name: inputs.setdefault(name, args[0]))
        converted[name].register_forward_hook(lambda m, args, out, name=name: outputs.setdefault(name, out))
    with torch.no_grad():
        twins.converted(example)
    rows = []
    with torch.no_grad():
        for name in names:
            module, quantized_input, quantized_output = converted[name], inputs[name], outputs[name]
            step, zero_point = quantized_output.q_scale(), quantized_output.q_zero_point()
            fake_quant = reference[name](quantized_input.dequantize())
            to_reference = (quantized_output.dequantize() - fake_quant).abs() / step
            exact = F.conv2d(
                quantized_input.dequantize().double(), module.weight().dequantize().double(),
                module.bias().double(), module.stride, module.padding, module.dilation, module.groups,
            )
            if "ReLU" in type(module).__name__:
                exact = exact.relu()
            exact = (exact / step).round().add(zero_point).clamp(0, 255)
            to_exact = (quantized_output.int_repr().double() - exact).abs()
            rows.append({
                "module": name,
                "max_steps_vs_fake_quant": round(float(to_reference.max()), 1),
                "share_beyond_one_step": round(float((to_reference > 1.001).double().mean()), 4),
                "max_steps_vs_exact_int": float(to_exact.max()),
                "input_share_above_127": round(float((quantized_input.int_repr() > 127).double().mean()), 4),
            })
    worst = sorted(rows, key=lambda row: -row["max_steps_vs_fake_quant"])
    print(json.dumps({"engine": engine, "convs": len(rows),
                      "convs_beyond_one_step": sum(row["share_beyond_one_step"] > 0 for row in rows),
                      "worst": worst[:5]}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    case_parser = commands.add_parser("case")
    case_parser.add_argument("model")
    case_parser.add_argument("engine")
    case_parser.add_argument("flow", choices=["eager-ptq", "eager-qat", "fx-ptq", "pt2e-ptq", "pt2e-qat"])
    isolate_parser = commands.add_parser("isolate")
    isolate_parser.add_argument("engine")
    isolate_parser.add_argument("--steps", type=int, default=4)
    arguments = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    if arguments.command == "case":
        print(json.dumps(case(arguments.model, arguments.engine, arguments.flow)))
    else:
        isolate(arguments.engine, arguments.steps)


if __name__ == "__main__":
    main()
