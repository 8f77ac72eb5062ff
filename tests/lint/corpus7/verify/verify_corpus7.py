"""Run every model of corpus7 through eager post-training quantization on the installed torch
and check that the QL701/QL702/QL703/QL705 labels agree with where the converted model fails.

    python verify_corpus7.py [CORPUS_DIR]

For each case: build the model, eval(), fuse_model() when the model defines it, set the x86
default qconfig on the top-level module (the files' own `qconfig = None` islands are kept),
prepare, calibrate on two random batches, convert, run once more. Models without stubs are
quantized the way eager mode quantizes them, inside QuantWrapper. A case expected to fail must
fail with the deepest traceback frame inside the corpus file labeled with that code, and the
expected label on one of the corpus frames (a call into a child shows both lines); a case
expected to run must run. Every expected QL701/QL702/QL703/QL705 label must be reached by some
case. It also prints which QuantStub/DeQuantStub modules never ran and whether the output is
still quantized (what QL704 is about).

This file is not a test (pytest does not collect it) and carries no labels.
"""
import importlib.util
import os
import re
import sys
import traceback
import warnings

import torch
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub, QuantWrapper, convert, get_default_qconfig, prepare

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(HERE)
EXPECT = re.compile(r"#.*?\bexpect:\s*([A-Z0-9, ]+)")
ALLOW = re.compile(r"#.*?\ballow:\s*([A-Z0-9, ]+)")
CRASH_CODES = {"QL701", "QL702", "QL703", "QL705"}


def labels(path):
    expect, allow = {}, {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            for pattern, bucket in ((EXPECT, expect), (ALLOW, allow)):
                m = pattern.search(line)
                if m:
                    bucket[number] = {c.strip() for c in m.group(1).split(",") if c.strip()}
    return expect, allow


def load(stem):
    path = os.path.join(CORPUS, stem + ".py")
    spec = importlib.util.spec_from_file_location("corpus7_" + stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def img(n=2, c=3, h=32, w=32):
    return lambda: (torch.rand(n, c, h, w),)


# (file stem, case name, build(module) -> nn.Module, inputs() -> tuple, outcome, [options])
# outcome: None, the case must run; a rule code, it must fail at a line expecting that code;
# the code prefixed by "allow" and a colon, it must fail at a line allowing that code.
# options: "after_convert", a function applied to the converted model before the last run (a
# mode switch, or a patch that removes an earlier failure on the same path so that a later
# labeled line can be reached).
CASES = [
    # torchvision_style.py
    ("torchvision_style", "QuantizableTinyGoogLeNet", lambda m: m.QuantizableTinyGoogLeNet(), img(), None),
    ("torchvision_style", "QuantWrapper(TinyGoogLeNet(transform_input=False))",
     lambda m: QuantWrapper(m.TinyGoogLeNet(transform_input=False)), img(), None),
    ("torchvision_style", "QuantWrapper(QuantizableBasicBlock)", lambda m: QuantWrapper(m.QuantizableBasicBlock(8, 8)),
     img(c=8, h=8, w=8), None),
    ("torchvision_style", "QuantWrapper(QuantizableBottleneck)", lambda m: QuantWrapper(m.QuantizableBottleneck(4)),
     img(c=16, h=8, w=8), "QL705"),
    ("torchvision_style", "QuantWrapper(ResNetLite)", lambda m: QuantWrapper(m.ResNetLite()), img(), None),
    ("torchvision_style", "QuantizableResNetLite", lambda m: m.QuantizableResNetLite(), img(), None),
    ("torchvision_style", "ResNetLiteFloatHead", lambda m: m.ResNetLiteFloatHead(), img(), None),
    ("torchvision_style", "ResNetLiteEarlyDequant", lambda m: m.ResNetLiteEarlyDequant(), img(), "QL701"),
    # multi_input_fusion.py
    ("multi_input_fusion", "RGBDFusionNet", lambda m: m.RGBDFusionNet(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)), None),
    ("multi_input_fusion", "RGBDEarlyFusionNet", lambda m: m.RGBDEarlyFusionNet(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)), None),
    ("multi_input_fusion", "RGBDLateFusionNet", lambda m: m.RGBDLateFusionNet(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)), "QL701"),
    ("multi_input_fusion", "WideAndDeep(requantize=True)", lambda m: m.WideAndDeep(),
     lambda: (torch.rand(2, 3, 32, 32), torch.randn(2, 8)), None),
    ("multi_input_fusion", "WideAndDeep(requantize=False)", lambda m: m.WideAndDeep(requantize=False),
     lambda: (torch.rand(2, 3, 32, 32), torch.randn(2, 8)), "QL702"),
    ("multi_input_fusion", "SiameseVerifier", lambda m: m.SiameseVerifier(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)), None),
    ("multi_input_fusion", "SiameseSharedStub", lambda m: m.SiameseSharedStub(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)), "QL701"),
    ("multi_input_fusion", "MaskedSetClassifier", lambda m: m.MaskedSetClassifier(),
     lambda: (torch.randn(2, 10, 6), torch.rand(2, 10) > 0.3, torch.randint(1, 10, (2,))), None),
    # detection_heads.py
    ("detection_heads", "QuantizableRetinaLite", lambda m: m.QuantizableRetinaLite(), img(), None),
    ("detection_heads", "RetinaLiteFusedDecode", lambda m: m.RetinaLiteFusedDecode(), img(), "QL702"),
    ("detection_heads", "YoloLiteExport", lambda m: m.YoloLiteExport(), img(), "QL702"),
    ("detection_heads", "QueryBoxRefiner(requantize=True)", lambda m: m.QueryBoxRefiner(),
     lambda: (torch.randn(2, 10, 32),), None),
    ("detection_heads", "QueryBoxRefiner(requantize=False)", lambda m: m.QueryBoxRefiner(requantize=False),
     lambda: (torch.randn(2, 10, 32),), "QL701"),
    ("detection_heads", "CenterNetLite", lambda m: m.CenterNetLite(), img(), None),
    ("detection_heads", "DecoupledHeadDetector", lambda m: m.DecoupledHeadDetector(), img(), "QL703"),
    ("detection_heads", "DecoupledHeadDetector, quant_cls removed after convert", lambda m: m.DecoupledHeadDetector(),
     img(), "QL703", {"after_convert": lambda q: setattr(q, "quant_cls", nn.Identity())}),
    # segmentation.py
    ("segmentation", "QuantWrapper(UNetLite) via build_quantized_unet", None, img(), None),
    ("segmentation", "DeepLabLite", lambda m: m.DeepLabLite(), img(), None),
    ("segmentation", "DeepLabLiteLateAuxDequant", lambda m: m.DeepLabLiteLateAuxDequant(), img(), "QL702"),
    ("segmentation", "TwoScaleSegNet", lambda m: m.TwoScaleSegNet(), img(), None),
    ("segmentation", "TwoScaleSegNetSharedResize", lambda m: m.TwoScaleSegNetSharedResize(), img(), "QL703"),
    ("segmentation", "MaskRefiner(quantize_mask=True)", lambda m: m.MaskRefiner(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)), None),
    ("segmentation", "MaskRefiner(quantize_mask=False)", lambda m: m.MaskRefiner(quantize_mask=False),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)), "QL701"),
    # speech_text.py
    ("speech_text", "SpeakerConditionedKWS", lambda m: m.SpeakerConditionedKWS(),
     lambda: (torch.rand(2, 40, 50), torch.randn(2, 16)), "QL701"),
    ("speech_text", "ConformerLiteEncoder", lambda m: m.ConformerLiteEncoder(),
     lambda: (torch.rand(2, 40, 50), padding_bias(2, 25)), None),
    ("speech_text", "ConformerLiteEncoderEarlyBias", lambda m: m.ConformerLiteEncoderEarlyBias(),
     lambda: (torch.rand(2, 40, 50), padding_bias(2, 25)), "QL702"),
    ("speech_text", "CRNNLite", lambda m: m.CRNNLite(), lambda: (torch.rand(2, 40, 50),), None),
    ("speech_text", "CRNNLite(dequantize_before_rnn=False)", lambda m: m.CRNNLite(dequantize_before_rnn=False),
     lambda: (torch.rand(2, 40, 50),), "QL702"),
    ("speech_text", "TinyTextClassifier", lambda m: m.TinyTextClassifier(),
     lambda: (torch.randint(0, 1000, (2, 12)), torch.ones(2, 12, dtype=torch.long)), None),
    ("speech_text", "Wav2VecLiteForCTC", lambda m: m.Wav2VecLiteForCTC(), lambda: (torch.randn(2, 400),), "QL701"),
    # nested_stubs.py
    ("nested_stubs", "TinyMixer", lambda m: m.TinyMixer(), img(), None),
    ("nested_stubs", "QuantizedEmbedder", lambda m: m.QuantizedEmbedder(), img(), None),
    ("nested_stubs", "RetrievalModel", lambda m: m.RetrievalModel(), img(), "QL703"),
    ("nested_stubs", "TwoStageClassifier", lambda m: m.TwoStageClassifier(), img(), None),
    ("nested_stubs", "EdgeClassifier", lambda m: m.EdgeClassifier(), img(), None),
    ("nested_stubs", "wrap_for_mobile()[0]: QuantWrapper(EdgeClassifier)", lambda m: m.wrap_for_mobile()[0], img(), "QL703"),
    ("nested_stubs", "wrap_for_mobile()[1]: QuantWrapper(Sequential)", lambda m: m.wrap_for_mobile()[1], img(), None),
    ("nested_stubs", "FeatureService", lambda m: m.FeatureService(), img(), None),
    ("nested_stubs", "ScoringService", lambda m: m.ScoringService(), img(), None),
    ("nested_stubs", "StackingEnsemble", lambda m: m.StackingEnsemble(), img(), "QL702"),
    ("nested_stubs", "StackingEnsembleFloatEmbeddings", lambda m: m.StackingEnsembleFloatEmbeddings(), img(), None),
    # submodule_names.py
    ("submodule_names", "HRStem", lambda m: m.HRStem(), img(), None),
    ("submodule_names", "DenseLite", lambda m: m.DenseLite(), img(), None),
    ("submodule_names", "QuantWrapper(ShuffleUnit)", lambda m: QuantWrapper(m.ShuffleUnit(8)), img(c=8, h=8, w=8), None),
    ("submodule_names", "GatedClassifier", lambda m: m.GatedClassifier(), img(), None),
    ("submodule_names", "GatedClassifier(hard_gate=False)", lambda m: m.GatedClassifier(hard_gate=False), img(), None),
    ("submodule_names", "quantizable_litenet()", lambda m: m.quantizable_litenet(), img(), None),
    ("submodule_names", "QuantWrapper(LiteNet)", lambda m: QuantWrapper(m.LiteNet()), img(), None),
    ("submodule_names", "QuantizableMobileBlock", lambda m: m.QuantizableMobileBlock(), img(c=16, h=8, w=8), "QL705"),
    ("submodule_names", "QuantWrapper(PoolHead)", lambda m: QuantWrapper(m.PoolHead()), img(c=16, h=8, w=8), None),
    ("submodule_names", "QuantWrapper(TwoLayerPoolHead)", lambda m: QuantWrapper(m.TwoLayerPoolHead()),
     img(c=16, h=8, w=8), "QL705"),
    ("submodule_names", "QuantWrapper(Net)", lambda m: QuantWrapper(m.Net()), img(), None),
    ("submodule_names", "QuantizableNet", lambda m: m.QuantizableNet(), img(), "QL705"),
    ("submodule_names", "TimmStyleNet", lambda m: m.TimmStyleNet(), img(), None),
    ("submodule_names", "TimmStyleEmbedder", lambda m: m.TimmStyleEmbedder(), img(), "QL705"),
    # unused_stubs.py
    ("unused_stubs", "DeployableCNN", lambda m: m.DeployableCNN(), img(), None),
    ("unused_stubs", "TopKExporter", lambda m: m.TopKExporter(), img(), None),
    ("unused_stubs", "ExportableClassifier", lambda m: m.ExportableClassifier(), img(), None),
    ("unused_stubs", "ExportableClassifier(int8_output=True)", lambda m: m.ExportableClassifier(int8_output=True),
     img(), None),
    ("unused_stubs", "StereoFeatureNet", lambda m: m.StereoFeatureNet(), lambda: (torch.rand(2, 3, 32, 32),) * 2, None),
    ("unused_stubs", "MultiViewNet", lambda m: m.MultiViewNet(), lambda: ([torch.rand(2, 3, 32, 32) for _ in range(3)],),
     None),
    ("unused_stubs", "ModalityNet", lambda m: m.ModalityNet(),
     lambda: ({"rgb": torch.rand(2, 3, 32, 32), "flow": torch.randn(2, 2, 32, 32)},), None),
    ("unused_stubs", "AuxLogitsNet", lambda m: m.AuxLogitsNet(), img(), None),
    ("unused_stubs", "PrunedAuxNet", lambda m: m.PrunedAuxNet(), img(), None),
    ("unused_stubs", "PyramidOutputs", lambda m: m.PyramidOutputs(), img(), None),
    ("unused_stubs", "PostprocessedNet", lambda m: m.PostprocessedNet(), img(), None),
    ("unused_stubs", "AuxLogitsNet (train mode after convert)", lambda m: m.AuxLogitsNet(), img(), None,
     {"after_convert": lambda q: q.train()}),
    # helpers_loops.py
    ("helpers_loops", "CoordConvNet", lambda m: m.CoordConvNet(), img(), None),
    ("helpers_loops", "CoordConvHead", lambda m: m.CoordConvHead(), img(), "QL702"),
    ("helpers_loops", "MultiResolutionNet", lambda m: m.MultiResolutionNet(), img(), None),
    ("helpers_loops", "SharedStemMultiBranch", lambda m: m.SharedStemMultiBranch(), img(), "QL703"),
    ("helpers_loops", "FPNLite", lambda m: m.FPNLite(), img(), None),
    ("helpers_loops", "FPNLiteReusedOutput", lambda m: m.FPNLiteReusedOutput(), img(), "QL701"),
    ("helpers_loops", "QuantWrapper(ShuffleBlock)", lambda m: QuantWrapper(m.ShuffleBlock(16)), img(c=16, h=8, w=8), None),
    ("helpers_loops", "QuantWrapper(ShuffleBlockInference)", lambda m: QuantWrapper(m.ShuffleBlockInference(16)),
     img(c=16, h=8, w=8), "QL705"),
    # float_islands.py
    ("float_islands", "TinyDenoiser", lambda m: m.TinyDenoiser(), img(), None),
    ("float_islands", "TinyDenoiser(downsample=True)", lambda m: m.TinyDenoiser(downsample=True), img(), "QL701"),
    ("float_islands", "QuantWrapper(ResBlock)", lambda m: QuantWrapper(m.ResBlock(8, 16)), img(c=8, h=8, w=8), None),
    ("float_islands", "QuantWrapper(Downsample)", lambda m: QuantWrapper(m.Downsample(8)), img(c=8, h=8, w=8), "QL701"),
    ("float_islands", "TinyViT", lambda m: m.TinyViT(), img(), None),
    ("float_islands", "PoseRegressor", lambda m: m.PoseRegressor(), img(), None),
    ("float_islands", "PoseRegressor(dequantize_heatmaps=False)", lambda m: m.PoseRegressor(dequantize_heatmaps=False),
     img(), "QL702"),
    # tutorial_style.py
    ("tutorial_style", "M", lambda m: m.M(), img(c=1, h=8, w=8), None),
    ("tutorial_style", "SmallCNN", lambda m: m.SmallCNN(), img(), "allow:QL701"),
    ("tutorial_style", "FloatStemNet", lambda m: m.FloatStemNet(), img(), None),
    ("tutorial_style", "CifarResNetA", lambda m: m.CifarResNetA(), img(), None),
    ("tutorial_style", "ConvBlockWithStubs", lambda m: m.ConvBlockWithStubs(3, 8), img(), None),
    ("tutorial_style", "StackedBlocks", lambda m: m.StackedBlocks(), img(), "QL703"),
    ("tutorial_style", "StackedBlocksFloatGlue", lambda m: m.StackedBlocksFloatGlue(), img(), None),
    ("tutorial_style", "ResidualDenoiser", lambda m: m.ResidualDenoiser(), img(), None),
    ("tutorial_style", "ResidualDenoiserLateDequant", lambda m: m.ResidualDenoiserLateDequant(), img(), "QL702"),
    ("tutorial_style", "CalibratedClassifier", lambda m: m.CalibratedClassifier(),
     lambda: (torch.rand(2, 3, 32, 32), torch.rand(2, 1) + 0.5), "QL702"),
    ("tutorial_style", "CharRNNCell", lambda m: m.CharRNNCell(), lambda: (torch.rand(2, 32), torch.randn(2, 32)), "QL701"),
    ("tutorial_style", "QuantizableCharRNNCell", lambda m: m.QuantizableCharRNNCell(),
     lambda: (torch.rand(2, 32), torch.randn(2, 32)), None),
    ("tutorial_style", "CharRNN", lambda m: m.CharRNN(), lambda: (torch.rand(5, 2, 32),), None),
]


def padding_bias(batch, steps):
    """Additive attention bias (B, 1, 1, T): 0 for frames, -inf for the padded tail."""
    lengths = torch.randint(steps // 2, steps + 1, (batch,))
    pad = torch.arange(steps)[None, :] >= lengths[:, None]
    return torch.zeros(batch, steps).masked_fill(pad, float("-inf"))[:, None, None, :]


def stub_calls(model):
    calls = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (QuantStub, DeQuantStub)) or type(mod).__name__ in ("Quantize", "DeQuantize"):
            calls[name] = 0
            mod.register_forward_pre_hook(lambda m, a, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def quantized_leaves(out):
    if isinstance(out, torch.Tensor):
        return [out.is_quantized]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [q for o in out for q in quantized_leaves(o)]
    return []


def quantize_and_run(module, build, inputs, after_convert=None):
    torch.manual_seed(0)
    if build is None:  # the file's own builder
        model = module.build_quantized_unet([inputs()[0] for _ in range(2)])
    else:
        model = build(module).eval()
        if hasattr(model, "fuse_model"):
            model.fuse_model()
        model.qconfig = get_default_qconfig("x86")
        prepare(model, inplace=True)
        with torch.no_grad():
            for _ in range(2):
                model(*inputs())
        convert(model, inplace=True)
    if after_convert is not None:
        after_convert(model)
    calls = stub_calls(model)
    with torch.no_grad():
        out = model(*inputs())
    return out, calls


def main():
    modules, failures, reached = {}, [], set()
    rows = []
    for stem, name, build, inputs, expected, *options in CASES:
        options = options[0] if options else {}
        kind, _, code = (expected or "").rpartition(":")
        bucket_name = kind or "expect"
        if stem not in modules:
            modules[stem] = load(stem)
        module, path = modules[stem]
        expect, allow = labels(path)
        observed, where, note = "runs", "", ""
        try:
            out, calls = quantize_and_run(module, build, inputs, options.get("after_convert"))
            unused = sorted(n for n, c in calls.items() if c == 0)
            q = quantized_leaves(out)
            note = ("unused stubs: " + ", ".join(unused) if unused else "") + (" output quantized" if q and all(q) else "")
        except Exception as exc:  # noqa: BLE001 - the failure is what we measure
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == path]
            chain = [f.lineno for f in frames]
            deepest = chain[-1] if chain else None
            codes = expect.get(deepest, set()) | allow.get(deepest, set())
            hit = [(ln, c) for ln in chain for c in expect.get(ln, set()) & CRASH_CODES]
            allowed = [(ln, c) for ln in chain for c in allow.get(ln, set()) & CRASH_CODES]
            reached.update((stem, ln, c) for ln, c in hit + allowed)
            observed = f"{type(exc).__name__} at line {deepest}"
            where = f"labels there: {','.join(sorted(codes)) or '-'}; {bucket_name} labels in chain: {hit if bucket_name == 'expect' else allowed}"
            first = str(exc).strip().splitlines()[0][:90] if str(exc).strip() else ""
            note = first
            labeled = hit if bucket_name == "expect" else allowed
            if expected and not (code in codes and any(c == code for _, c in labeled)):
                failures.append(f"{stem}:{name}: expected {expected}, {observed} ({where})")
        if expected is None and observed != "runs":
            failures.append(f"{stem}:{name}: expected to run, {observed}: {note}")
        if expected and observed == "runs":
            failures.append(f"{stem}:{name}: expected {expected}, but it ran")
        rows.append((stem, name, expected or "-", observed, note))
    unreached_allow = []
    for stem, (module, path) in modules.items():
        expect, allow = labels(path)
        for ln, codes in expect.items():
            for c in codes & CRASH_CODES:
                if (stem, ln, c) not in reached:
                    failures.append(f"{stem}:{ln}: expect {c} never reached by a failing case")
        for ln, codes in allow.items():
            unreached_allow += [f"{stem}:{ln}: allow {c}" for c in codes & CRASH_CODES if (stem, ln, c) not in reached]
    width = max(len(f"{s}:{n}") for s, n, *_ in rows)
    for stem, name, expected, observed, note in rows:
        print(f"{(stem + ':' + name).ljust(width)}  {expected:11} {observed:32} {note}")
    print()
    if unreached_allow:
        print("allowed labels no case fails at (a report there is accepted, not required):", "; ".join(unreached_allow))
    print("\n".join(failures) if failures else f"all {len(rows)} cases agree with the labels")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
