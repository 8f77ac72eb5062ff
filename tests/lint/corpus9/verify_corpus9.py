"""Run the claims behind corpus9's labels through torch 2.13 eager quantization.

    python tests/lint/corpus9/verify_corpus9.py        (needs torch==2.13.0; not a pytest file)

Each check names the corpus file and line it backs. A "crash" check quantizes a model
(prepare, calibrate on random data, convert), runs it, and asserts that the first exception
is raised on a line of the corpus file that carries the given label; a "runs" check asserts
that the converted model runs (the hard negatives on its path are fine); the other checks
inspect what prepare/convert/fusion produced. Prints one line per check, exits 1 on a failure.
"""
import os
import re
import sys
import traceback
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import DeQuantStub, QuantStub, convert, get_default_qconfig, prepare

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
warnings.simplefilter("ignore")
torch.manual_seed(0)
torch.backends.quantized.engine = "x86"

import bert_encoder  # noqa: E402
import efficientnet_retrieval  # noqa: E402
import fcos_head  # noqa: E402
import llama_decoder  # noqa: E402
import mnist_tutorial  # noqa: E402
import mobilenet_v3_quant  # noqa: E402
import module_reuse  # noqa: E402
import ptq_export  # noqa: E402
import qat_finetune  # noqa: E402
import qat_trainer  # noqa: E402
import quantizable_resnet  # noqa: E402
import stub_boundaries  # noqa: E402
import swin_window_attention  # noqa: E402
import timm_blocks  # noqa: E402
import unet_segmentation  # noqa: E402
import yolo_neck  # noqa: E402

LABEL = re.compile(r"#.*?\b(expect|allow):\s*([A-Z0-9, ]+)")
RESULTS = []


def labels(path, lineno):
    with open(path, encoding="utf-8") as fh:
        line = fh.readlines()[lineno - 1]
    return {c.strip() for _, group in LABEL.findall(line) for c in group.split(",") if c.strip()}


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok), detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  [{detail}]" if detail else ""))


class Wrap(nn.Module):
    """QuantWrapper for modules with extra (float, non-activation) arguments."""

    def __init__(self, module):
        super().__init__()
        self.quant = QuantStub()
        self.module = module
        self.dequant = DeQuantStub()

    def forward(self, x, *rest, **kw):
        out = self.module(self.quant(x), *rest, **kw)
        if isinstance(out, tuple):
            return tuple(self.dequant(o) if isinstance(o, torch.Tensor) else o for o in out)
        return self.dequant(out)


def quantize(model, make_inputs, calib=3, qconfig=None):
    model.eval()
    if model.qconfig is None if hasattr(model, "qconfig") else True:
        model.qconfig = qconfig or get_default_qconfig("x86")
    prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(calib):
            model(*make_inputs())
    return convert(model)


def first_failure(fn):
    """(file, line, exception) of the innermost corpus9 frame of the exception fn raises."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename.startswith(HERE) and not f.filename.endswith("verify_corpus9.py")]
        if not frames:
            return None, None, exc
        return frames[-1].filename, frames[-1].lineno, exc
    return None, None, None


def crash(name, fn, code, message=None):
    path, line, exc = first_failure(fn)
    if exc is None:
        check(f"{name}: crashes after convert ({code})", False, "ran without error")
        return
    where = f"{os.path.basename(path)}:{line}" if path else "outside corpus"
    ok = path is not None and code in labels(path, line)
    if message:
        ok = ok and message in str(exc)
    check(f"{name}: crashes after convert at a line labeled {code}", ok,
          f"{where} {type(exc).__name__}: {str(exc).splitlines()[0][:90]}")


def runs(name, fn):
    path, line, exc = first_failure(fn)
    check(f"{name}: converted model runs (negatives on its path)", exc is None,
          "" if exc is None else f"{path}:{line} {exc}")


def ops_on_quantized():
    q = torch.quantize_per_tensor(torch.randn(2, 4, 4, 4), 0.05, 64, torch.quint8)
    q2 = torch.quantize_per_tensor(torch.randn(2, 4, 4, 4), 0.2, 64, torch.quint8)
    raising = {
        "x.pow (QL104)": lambda: q.pow(2), "torch.rsqrt (QL104)": lambda: torch.rsqrt(q),
        "unary -x (QL104)": lambda: -q, "torch.exp (QL104)": lambda: torch.exp(q),
        "x.sum (QL104)": lambda: q.sum((2, 3)), "torch.roll (QL104)": lambda: torch.roll(q, 1, 2),
        "x * y (QL301)": lambda: q * q2, "x + y (QL301)": lambda: q + q2, "x * 0.5 (QL301)": lambda: q * 0.5,
        "x @ y (QL301)": lambda: q @ q2, "torch.matmul (QL302)": lambda: torch.matmul(q, q2),
        "Tensor.mul (QL302)": lambda: q.mul(q2), "x / c (QL303)": lambda: q / 4.0,
        "x.mul_ (QL202)": lambda: q.clone().mul_(q2), "x += y (QL203)": lambda: q.clone().__iadd__(q2),
        "F.softmax (QL102)": lambda: F.softmax(q, -1), "F.silu (QL102)": lambda: F.silu(q),
        "F.hardswish (QL102)": lambda: F.hardswish(q), "Tensor.softmax (QL102/QL104)": lambda: q.softmax(-1),
        "q + float (QL702)": lambda: q + torch.randn(2, 4, 4, 4),
    }
    for name, fn in raising.items():
        try:
            fn()
            check(f"op on quantized raises: {name}", False, "ran")
        except Exception as exc:  # noqa: BLE001
            check(f"op on quantized raises: {name}", True, type(exc).__name__)
    cat = torch.cat([q, q2], 1)
    check("torch.cat on quantized runs with the first input's scale (QL302 warning)",
          cat.q_scale() == q.q_scale(), f"scales {q.q_scale()} {q2.q_scale()} -> {cat.q_scale()}")
    for name, fn in {"F.relu": lambda: F.relu(q), "x.relu()": lambda: q.relu(), "F.interpolate": lambda: F.interpolate(q, scale_factor=2),
                     "torch.tanh": lambda: torch.tanh(q), "F.gelu": lambda: F.gelu(q), "x.mean": lambda: q.mean((2, 3))}.items():
        fn()
        check(f"op on quantized runs: {name}", True)


def llama():
    cfg = llama_decoder.LlamaConfig()
    crash("llama RMSNorm", lambda: quantize(Wrap(llama_decoder.LlamaRMSNorm(16)), lambda: (torch.randn(2, 5, 16),))(torch.randn(2, 5, 16)), "QL104")
    crash("llama MLP", lambda: quantize(Wrap(llama_decoder.LlamaMLP(cfg)), lambda: (torch.randn(2, 5, 64),))(torch.randn(2, 5, 64)), "QL301")
    model = llama_decoder.LlamaModel(cfg)
    ids = torch.randint(1, 128, (2, 6))
    emb = model.embed_tokens(ids)
    mask = model._update_causal_mask((ids != 0).long(), emb, torch.arange(6))
    cos_sin = model.rotary_emb(emb, torch.arange(6)[None].expand(2, -1))
    check("llama mask and rotary tables are plain float tensors built from integer positions",
          not mask.is_quantized and not cos_sin[0].is_quantized and mask.dtype == torch.float32)
    attn = Wrap(llama_decoder.LlamaAttention(cfg))
    crash("llama attention via apply_rotary_pos_emb", lambda: quantize(attn, lambda: (torch.randn(2, 6, 64), cos_sin, mask))(torch.randn(2, 6, 64), cos_sin, mask), "QL301")


def bert():
    model = bert_encoder.QuantizableBertModel()
    inputs = lambda: (torch.randint(1, 100, (2, 6)), torch.ones(2, 6, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long))
    crash("bert BertLayer residual", lambda: quantize(model, inputs)(*inputs()), "QL301")

    class FixedLayer(bert_encoder.BertLayer):
        def __init__(self, *a):
            super().__init__(*a)
            self.attn_add = torch.ao.nn.quantized.FloatFunctional()
            self.intermediate_act_fn = nn.GELU()

        def forward(self, hidden_states, attention_mask):
            attn = self.attn_out(self.attention(hidden_states, attention_mask))
            attn = self.attn_norm(self.attn_add.add(attn, hidden_states))
            inter = self.intermediate_act_fn(self.intermediate(attn))
            return self.output_norm(self.ffn_add.add(self.output(inter), attn))

    fixed = bert_encoder.QuantizableBertModel()
    fixed.layers = nn.ModuleList([FixedLayer(32, 4, 128) for _ in range(2)])
    runs("bert with the two labeled spots fixed (float embeddings +=, mask math, softmax after dequant)", lambda: quantize(fixed, inputs)(*inputs()))
    crash("bert NewGELUActivation", lambda: quantize(Wrap(bert_encoder.NewGELUActivation()), lambda: (torch.randn(2, 8),))(torch.randn(2, 8)), "QL104")


def resnet():
    crash("resnet load_quantized (LegacyBasicBlock tail)", lambda: quantizable_resnet.load_quantized()(torch.rand(1, 3, 64, 64)), "QL203")
    model = quantizable_resnet.QuantizableResNet()
    model.tail = quantizable_resnet.QuantizableBasicBlock(32, 32)
    model.eval().fuse_model()
    runs("resnet with the tail replaced (_transform_input float arithmetic and torch.cat before the QuantStub)",
         lambda: quantize(model, lambda: (torch.rand(2, 3, 64, 64),))(torch.rand(1, 3, 64, 64)))
    block = quantizable_resnet.LegacyBasicBlock(8).eval()
    x = torch.randn(1, 8, 8, 8)
    before = block(x)
    block.fuse_model()
    after = block(x)
    check("resnet LegacyBasicBlock: fusing the shared relu makes its second call Identity (QL502/QL401)",
          isinstance(block.relu, nn.Identity) and after.min() < 0 <= before.min(), f"min before {before.min():.3f} after {after.min():.3f}")


def mobilenet():
    def flow(cls):
        model = cls().eval()
        model.fuse_model()
        return quantize(model, lambda: (torch.randn(2, 3, 32, 32),))
    runs("mobilenet QuantizableMobileNetV3 (SE FloatFunctional, _make_divisible, inverted residual add)", lambda: flow(mobilenet_v3_quant.QuantizableMobileNetV3)(torch.randn(1, 3, 32, 32)))
    crash("mobilenet MobileNetV3WithFunctionalHead", lambda: flow(mobilenet_v3_quant.MobileNetV3WithFunctionalHead)(torch.randn(1, 3, 32, 32)), "QL102")
    model = flow(mobilenet_v3_quant.QuantizableMobileNetV3)
    check("mobilenet stem conv and bn stay two quantized modules after fuse_model (QL503)",
          type(model.stem_conv).__name__ == "Conv2d" and type(model.stem_bn).__name__ == "BatchNorm2d",
          f"{type(model.stem_conv).__module__}.{type(model.stem_conv).__name__}, {type(model.stem_bn).__name__}")


def timm():
    crash("timm TinyHybridNet (ConvNeXt layer scale)", lambda: quantize(timm_blocks.TinyHybridNet(), lambda: (torch.randn(2, 3, 32, 32),))(torch.randn(1, 3, 32, 32)), "QL302")
    crash("timm LayerScale", lambda: quantize(Wrap(timm_blocks.LayerScale(8)), lambda: (torch.randn(2, 8),))(torch.randn(2, 8)), "QL301")
    crash("timm ConvNeXtBlock without layer scale", lambda: quantize(Wrap(timm_blocks.ConvNeXtBlock(8, ls_init_value=0)), lambda: (torch.randn(2, 8, 8, 8),))(torch.randn(1, 8, 8, 8)), "QL301")
    runs("timm BasicBlock (FloatFunctional skip, Identity drop path)", lambda: quantize(Wrap(timm_blocks.BasicBlock(8, 8)), lambda: (torch.randn(2, 8, 8, 8),))(torch.randn(1, 8, 8, 8)))
    runs("timm DropPath in eval returns before its multiply (allow: QL301)", lambda: quantize(Wrap(timm_blocks.DropPath(0.5)), lambda: (torch.randn(2, 8),))(torch.randn(2, 8)))
    block = timm_blocks.BasicBlock(8, 8)
    check("timm BasicBlock act_layer(inplace=True) builds in-place ReLUs (QL201)", block.act1.inplace and block.act2.inplace)


def fcos():
    inputs = lambda: (torch.randn(1, 16, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4))
    crash("fcos QuantizableFCOS (Scale)", lambda: quantize(fcos_head.QuantizableFCOS(), inputs)(*inputs()), "QL301")

    model = fcos_head.QuantizableFCOS()
    model.head.scales = nn.ModuleList([nn.Identity() for _ in range(3)])
    crash("fcos without the Scale modules", lambda: quantize(model, inputs)(*inputs()), "QL104", "exp")

    class TorchWithoutExp:
        exp = staticmethod(lambda t: t)

        def __getattr__(self, name):
            return getattr(torch, name)

    model = fcos_head.QuantizableFCOS()
    model.head.scales = nn.ModuleList([nn.Identity() for _ in range(3)])
    fcos_head.torch = TorchWithoutExp()
    try:
        runs("fcos without Scale and exp: decoding after the DeQuantStub (sqrt, *, cat), integer locations (div floor, %)",
             lambda: quantize(model, inputs)(*inputs()))
    finally:
        fcos_head.torch = torch
    head = fcos_head.FCOSHead(16, 5).eval()
    levels = [torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4) * 10]
    with torch.no_grad():
        ranges = [(o.min().item(), o.max().item()) for o in head(levels)[0]]
    head.qconfig = get_default_qconfig("x86")
    prepare(head, inplace=True)
    head(levels)
    obs = head.cls_logits.activation_post_process
    union = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    check("fcos shared head: one cls_logits observer records the union of every level's range (QL401)",
          abs(obs.min_val.item() - union[0]) < 1e-4 and abs(obs.max_val.item() - union[1]) < 1e-4,
          f"levels {[tuple(round(v, 2) for v in r) for r in ranges]} -> one range [{obs.min_val.item():.2f}, {obs.max_val.item():.2f}]")
    runs("fcos LevelwiseHead (a ModuleList entry per level, softmax after dequant)", lambda: quantize(fcos_head.LevelwiseHead(8, 3), lambda: ([torch.randn(1, 8, 4, 4)] * 3,))([torch.randn(1, 8, 4, 4)] * 3))


def yolo():
    crash("yolo TinyYolo (Bottleneck shortcut)", lambda: quantize(yolo_neck.TinyYolo(), lambda: (torch.randn(1, 3, 64, 64),))(torch.randn(1, 3, 64, 64)), "QL301")
    model = yolo_neck.TinyYolo()
    for m in model.modules():
        if isinstance(m, yolo_neck.Bottleneck):
            m.add = False
    runs("yolo without shortcut adds (torch.cat runs; SPPF pool and Upsample reused; FloatFunctional cat)", lambda: quantize(model, lambda: (torch.randn(1, 3, 64, 64),))(torch.randn(1, 3, 64, 64)))
    a, b = yolo_neck.Conv(3, 4), yolo_neck.Conv(4, 4)
    check("yolo Conv.default_act is one ReLU instance shared by every Conv (allow: QL402)", a.act is b.act)


def scripts_qat():
    loader = [(torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))) for _ in range(2)]
    real_convert = qat_finetune.convert
    qat_finetune.convert = lambda m, **kw: m
    try:
        float_model = qat_finetune.SmallNet()
        qat = qat_finetune.qat_copy_with_stale_optimizer(float_model, loader)
        qat_ids = {id(p) for p in qat.parameters()}
        float_ids = {id(p) for p in float_model.parameters()}
        check("qat_finetune stale optimizer: the trained copy shares no parameter with the optimizer's model (QL601)",
              not qat_ids & float_ids)
        model = qat_finetune.SmallNet()
        opt_ids = {id(p) for p in model.parameters()}
        qat = qat_finetune.qat_in_place_optimizer_first(model, loader)
        check("qat_finetune in place, default fake-quant: the optimizer holds every parameter (negative)",
              {id(p) for p in qat.parameters()} <= opt_ids, f"{len(list(qat.parameters()))} params")
        qat = qat_finetune.qat_with_ptq_qconfig(qat_finetune.SmallNet(), loader)
        wfq = type(qat.conv1.weight_fake_quant).__name__
        check("qat_finetune PTQ qconfig to prepare_qat: weights get an observer, not a fake-quant (QL604)", "Observer" in wfq, wfq)
        qat = qat_finetune.qat_after_eval_fusion(qat_finetune.SmallNet(), loader)
        check("qat_finetune eval fusion before QAT: BN folded, QAT trains without it (QL602)",
              not any(isinstance(m, nn.BatchNorm2d) for m in qat.modules()), type(qat.conv1).__name__)
    finally:
        qat_finetune.convert = real_convert
    try:
        qat_finetune.fused_for_deployment()
        exc = None
    except AssertionError as e:
        exc = e
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("qat_finetune.py")] if exc else []
    check("qat_finetune fuse_model on a new (train-mode) model raises 'Fusion only for eval!' from a QL603 line (QL603)",
          exc is not None and "Fusion only for eval" in str(exc)
          and any("QL603" in labels(os.path.join(HERE, "qat_finetune.py"), n) for n in lines), f"frames at lines {lines}")
    path, line, exc = first_failure(lambda: qat_finetune.qat_from_eval_model(loader))
    check("qat_finetune prepare_qat on an eval model raises (allow: QL608)", exc is not None and "training mode" in str(exc) and "QL608" in labels(path, line), f"line {line}")
    for mode in ("qat", "ptq"):
        runs(f"qat_finetune main --mode {mode}", lambda: qat_finetune.main(["--mode", mode]))


def scripts_ptq():
    loader = ptq_export.make_loader()
    runs("ptq_export static_quantize (calibration over a DataLoader)", lambda: ptq_export.static_quantize(ptq_export.M(), loader)(torch.randn(1, 1, 16, 16)))
    q = ptq_export.static_quantize_forgot_qconfig(loader)
    check("ptq_export prepare without qconfig: convert leaves the (fused) conv float (QL605)", "quantized" not in type(q.conv).__module__, type(q.conv).__module__)
    q = ptq_export.static_quantize_calibrated_float(ptq_export.M(), loader)
    check("ptq_export calibrating the float model: input scale stays the default 1.0 (QL606)", float(q.quant.scale) == 1.0, f"scale {float(q.quant.scale)}")
    q = ptq_export.static_quantize_smoke(ptq_export.M())
    good = ptq_export.static_quantize(ptq_export.M(), loader)
    check("ptq_export constant calibration: the input scale is a fraction of the DataLoader-calibrated one (QL607)",
          float(q.quant.scale) < float(good.quant.scale) / 4, f"constant {float(q.quant.scale):.5f} vs data {float(good.quant.scale):.5f}")
    q = ptq_export.static_quantize_discarded(ptq_export.M(), loader)
    check("ptq_export prepare result discarded: the model stays float (allow: QL609)", type(q.conv) is nn.Conv2d)
    q = ptq_export.legacy_quantize(ptq_export.M(), loader)
    check("ptq_export legacy torch.quantization still works (QL505 is a namespace warning)", q(torch.randn(1, 1, 16, 16)).shape == (1, 4))


def scripts_trainer():
    loader = [(torch.randn(4, 1, 8, 8), torch.randint(0, 6, (4,))) for _ in range(2)]
    trainer = qat_trainer.QATTrainer(qat_trainer.KeywordNet(), loader)
    opt_ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    trainer.prepare_for_qat()
    check("qat_trainer: the optimizer built in __init__ holds none of the prepared copy's parameters (QL601)",
          not {id(p) for p in trainer.model.parameters()} & opt_ids)
    qat_trainer.QATTrainer(qat_trainer.KeywordNet(), loader).fit(epochs=1)
    for fn, expect_missing in ((qat_trainer.lsq_finetune, True), (qat_trainer.lsq_finetune_fixed, False), (qat_trainer.fq_finetune_in_place, False)):
        model = qat_trainer.KeywordNet()
        grabbed = {}
        real_opt = torch.optim.Adam

        def spy(params, **kw):
            opt = real_opt(params, **kw)
            grabbed["ids"] = {id(p) for g in opt.param_groups for p in g["params"]}
            return opt
        torch.optim.Adam = spy
        try:
            model = fn(model, loader)
        finally:
            torch.optim.Adam = real_opt
        missing = [n for n, p in model.named_parameters() if id(p) not in grabbed["ids"]]
        check(f"qat_trainer {fn.__name__}: parameters the optimizer misses: {len(missing)}"
              + (" (QL601)" if expect_missing else " (negative)"), bool(missing) == expect_missing, ", ".join(missing[:3]))


def stubs():
    sb = stub_boundaries
    two = lambda: (torch.randn(1, 3, 8, 8), torch.randn(1, 1, 8, 8))
    crash("stubs RGBDFusion", lambda: quantize(sb.RGBDFusion(), two)(*two()), "QL701", "quantized::conv2d")
    runs("stubs RGBDFusionFixed (one QuantStub per input)", lambda: quantize(sb.RGBDFusionFixed(), two)(*two()))
    one = lambda: (torch.randn(1, 3, 8, 8),)
    runs("stubs FloatIslandNet (qconfig None island between stubs, float x * sigmoid)", lambda: quantize(sb.FloatIslandNet(), one)(*one()))
    crash("stubs ForgotDequantBeforeIsland", lambda: quantize(sb.ForgotDequantBeforeIsland(), one)(*one()), "QL702")
    prior = lambda: (torch.randn(1, 3, 8, 8), torch.randn(1, 4, 8, 8))
    crash("stubs PriorBoxNet", lambda: quantize(sb.PriorBoxNet(), prior)(*prior()), "QL702")
    enc = lambda: (torch.randn(1, 3, 8, 8), torch.ones(1, 8, 8))
    crash("stubs Encoder -> EncoderBlock", lambda: quantize(sb.Encoder(), enc)(*enc()), "QL703", "quantize_per_tensor")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = quantize(sb.Encoder(), enc)
    check("stubs Encoder.quant_mask never runs: convert warns about an observer that saw nothing (QL704)",
          any("must run observer" in str(w.message) for w in caught))
    out = quantize(sb.FeatureExtractor(), one)(*one())
    check("stubs FeatureExtractor returns a quantized tensor (QL704)", out.is_quantized)
    path, line, exc = first_failure(lambda: sb.RenamedReluNet()(torch.randn(1, 3, 8, 8)))
    check("stubs RenamedReluNet raises AttributeError at a QL705 line", isinstance(exc, AttributeError) and "QL705" in labels(path, line))
    runs("stubs MultiHeadNet (heads bound by setattr)", lambda: quantize(sb.MultiHeadNet(), one)(*one()))
    runs("stubs QuantWrapper(PlainNet) (no stub inside)", lambda: quantize(sb.wrapped_plain_net(), one)(*one()))


def unet():
    model = unet_segmentation.QuantizableUNet().eval()
    model.fuse_model()
    runs("unet QuantizableUNet (FloatFunctional cat, interpolate, torch.cat runs, softmax/argmax after dequant)",
         lambda: quantize(model, lambda: (torch.randn(1, 3, 32, 32),))(torch.randn(1, 3, 32, 32)))


def reuse():
    mr = module_reuse
    pair = lambda: (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8) * 10)
    model = quantize(mr.SiameseEncoder(), pair)
    check("module_reuse SiameseEncoder: both inputs get the one QuantStub's scale (QL401)", float(model.quant.scale) > 0.05, f"scale {float(model.quant.scale):.4f} for inputs of std 1 and 10")
    one = lambda: (torch.randn(1, 3, 16, 16),)
    runs("module_reuse Classifier (Dropout/Identity reused; extract_features off the forward path)", lambda: quantize(mr.Classifier(), one)(*one()))
    runs("module_reuse UnrolledRNN (ModuleList of FloatFunctionals indexed per step)", lambda: quantize(mr.UnrolledRNN(), lambda: (torch.randn(2, 4, 8),))(torch.randn(2, 4, 8)))
    stack = mr.AliasedStack()
    check("module_reuse AliasedStack: aliases are one instance (QL402)", stack.body[1] is stack.body[3] and stack.tail[0] is stack.tail[1] and stack.last_block is stack.blocks[2])
    check("module_reuse AliasedStack: norm_layer/act_layer classes give distinct instances (negative)", stack.bn_a is not stack.bn_b and stack.head[0] is not stack.head[1])


def swin():
    crash("swin SwinTransformerBlock (torch.roll)", lambda: quantize(Wrap(swin_window_attention.SwinTransformerBlock(16, (8, 8), 2)), lambda: (torch.randn(2, 64, 16),))(torch.randn(2, 64, 16)), "QL104")
    crash("swin WindowAttention", lambda: quantize(Wrap(swin_window_attention.WindowAttention(16, 2)), lambda: (torch.randn(4, 16, 16),))(torch.randn(4, 16, 16)), "QL301")
    block = swin_window_attention.SwinTransformerBlock(16, (8, 8), 2)
    check("swin mask and relative index are built in __init__ from constants (negatives)", block.attn_mask.dtype == torch.float32 and block.attn.relative_position_index.dtype == torch.int64)


def efficientnet():
    path, line, exc = first_failure(lambda: efficientnet_retrieval.RetrievalNet().eval().fuse_model())
    check("efficientnet fuse_model raises AttributeError on a QL501 line", isinstance(exc, AttributeError) and "QL501" in labels(path, line), f"line {line}")
    crash("efficientnet MBConv", lambda: quantize(Wrap(efficientnet_retrieval.MBConv(8, 8)), lambda: (torch.randn(2, 8, 8, 8),))(torch.randn(2, 8, 8, 8)), "QL102")
    crash("efficientnet SqueezeExcite", lambda: quantize(Wrap(efficientnet_retrieval.SqueezeExcite(8)), lambda: (torch.randn(2, 8, 8, 8),))(torch.randn(2, 8, 8, 8)), "QL104")
    crash("efficientnet GeM", lambda: quantize(Wrap(efficientnet_retrieval.GeM()), lambda: (torch.randn(2, 8, 8, 8),))(torch.randn(2, 8, 8, 8)), "QL104")

    head = efficientnet_retrieval.RetrievalNet()
    head.blocks = nn.Sequential(nn.Conv2d(16, 24, 1))
    head.pool = nn.AdaptiveAvgPool2d(1)
    runs("efficientnet RetrievalNet with plain blocks/pool (F.relu, /, F.normalize, F.linear after the DeQuantStub)",
         lambda: quantize(head, lambda: (torch.randn(2, 3, 32, 32),))(torch.randn(2, 3, 32, 32)))


def mnist():
    t = mnist_tutorial
    data = t.calibration_batches()
    crash("mnist Net after ptq (F.relu inplace runs, then logits -=)", lambda: t.ptq(t.Net(), data)(data[0]), "QL203")
    path, line, exc = first_failure(lambda: t.DistilledNet()(data[0]))
    check("mnist DistilledNet raises AttributeError at a QL705 line (the x / T there is QL303, see the op checks)",
          isinstance(exc, AttributeError) and "QL705" in labels(path, line), f"line {line}")
    crash("mnist TwoStageNet", lambda: t.ptq(t.TwoStageNet(), data)(data[0]), "QL701", "'CPU' backend")
    qat = t.qat_from_fused_copy(t.Net(), data)
    check("mnist qat_from_fused_copy: eval fusion folded BN before QAT (QL602)",
          not any(isinstance(m, nn.BatchNorm2d) for m in qat.modules()))
    try:
        t.quick_export()
        exc = None
    except AssertionError as e:
        exc = e
    check("mnist quick_export: fuse_modules on a train-mode model raises (QL603)", exc is not None and "Fusion only for eval" in str(exc))
    q = t.qat_without_qconfig(data)
    check("mnist prepare_qat without qconfig: convert leaves the model float (QL605)", type(q.conv1) is nn.Conv2d)
    q = t.convert_right_after_prepare()
    check("mnist convert right after prepare: input scale is the default 1.0 (QL606)", float(q.quant.scale) == 1.0)


def main():
    for section in (ops_on_quantized, llama, bert, resnet, mobilenet, timm, fcos, yolo, scripts_qat, scripts_ptq,
                    scripts_trainer, stubs, unet, reuse, swin, efficientnet, mnist):
        try:
            section()
        except Exception:  # noqa: BLE001
            check(f"{section.__name__}: section ran", False, traceback.format_exc().splitlines()[-1])
    failed = [r for r in RESULTS if not r[1]]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed (torch {torch.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
