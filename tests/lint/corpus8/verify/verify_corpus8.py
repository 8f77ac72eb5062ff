"""Runs every corpus8 script on the installed torch and checks its labels against what happens.

    python tests/lint/corpus8/verify/verify_corpus8.py [FILE ...]

Not a test module (pytest does not collect it) and not part of the labeled corpus: it carries
no labels. It wraps the eager quantization entry points, the optimizers and module forwards
with observers of the hazards QL601-QL607 describe, runs each scenario listed in SCENARIOS,
and attributes every observed hazard to the corpus lines on the call stack:

- QL601: an optimizer steps while it holds none of the parameters that got a gradient
  (it was built on another copy of the model), or while parameters of a model it trains get
  gradients that no optimizer holds (learnable fake-quant scale / zero_point).
- QL602: prepare_qat receives a module that eval fusion made by folding a BatchNorm.
- QL603: eval fusion raises "Fusion only for eval!" (the scenario is then re-run with the
  fused group switched to eval, as the fix would do, to check the rest of the script).
- QL604: prepare_qat leaves an observer, not a fake-quant, as a weight's weight_fake_quant.
- QL605: prepare / prepare_qat inserts no observer and no fake-quant at all.
- QL606: convert of a PTQ-prepared model whose observers never saw data (SQNR vs float).
- QL607: every forward between prepare and convert got a constant tensor; an observer's
  min equals its max (SQNR vs float on random data).

Every observed hazard must fall on a line labeled `expect` or `allow` with its code, every
`expect` label must be observed, and no scenario may fail in any other way. Exit status 0
when all hold.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import re
import runpy
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch
import torch.ao.quantization as ao
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.ao.quantization import FakeQuantizeBase, ObserverBase

CORPUS = Path(__file__).resolve().parents[1]
LABELS = {kind: re.compile(rf"#.*?\b{kind}:\s*([A-Z0-9, ]+)") for kind in ("expect", "allow")}
PROBE_SHAPES = ((8, 3, 16, 16), (8, 3, 8, 8))  # inputs tried when a scenario ran no forward
BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def saved_model(factory: str, mode: str):
    """An argument: the path of a whole pickled model (torch.save(model)) in train or eval mode."""
    def make(module, tmp: Path) -> str:
        model = getattr(module, factory)()
        model.train(mode == "train")
        path = tmp / f"{factory}_{mode}.pt"
        torch.save(model, path)
        return str(path)
    return make


# file -> scenarios: ("run_path",) runs the file as __main__; ("call", function, args) calls a
# module function; an argument given as a callable is built from (module) first.
def saved_state_dict(factory: str):
    """An argument: the path of a freshly initialized model's state_dict."""
    def make(module, tmp: Path) -> str:
        path = tmp / f"{factory}_state.pt"
        torch.save(getattr(module, factory)().state_dict(), path)
        return str(path)
    return make


def output(name: str):
    """An argument: a path in the scratch directory."""
    return lambda module, tmp: str(tmp / name)


def wrapped_factory(module, tmp: Path):
    """An argument: a model factory the script cannot see into (eval, fused, with a qconfig)."""
    def factory():
        model = module.TinyDetector().eval()
        model.fuse_model()
        wrapped = torch.ao.quantization.QuantWrapper(model)
        wrapped.qconfig = torch.ao.quantization.get_default_qconfig("x86")
        return wrapped
    return factory


def loader(module, tmp: Path):
    """An argument: the module's own make_loader()."""
    return module.make_loader()


def calls(*names: str) -> list[tuple]:
    return [("call", name, ()) for name in names]


SCENARIOS: dict[str, list[tuple]] = {
    "fusion_paths.py": [
        *calls("qat_after_deploy_fusion", "leimao_style_qat", "quant_wrapper_qat",
               "ptq_and_qat_from_one_fused_model", "fuse_after_float_training"),
        ("call", "fuse_after_loading", (saved_state_dict("Backbone"),)),
        *calls("fuse_frozen_backbone", "fuse_inside_quant_wrapper", "qat_with_eval_fuser",
               "qat_with_qat_fusion", "mlp_qat", "deploy_ptq"),
        ("call", "fuse_for", (True,)),
        ("call", "fuse_for", (False,)),
    ],
    "optimizer_order.py": calls(
        "qat_on_returned_copy", "qat_on_deepcopy", "lsq_qat", "param_groups_then_copy",
        "lsq_activations_only", "qat_rebuilt_optimizer", "qat_in_place_default_qconfig",
        "lsq_optimizer_after_prepare", "wrapper_prepared_in_place", "distill_into_quantized_student"),
    "qconfig_attach.py": [
        *calls("ptq_forgot_qconfig", "qconfig_after_prepare", "qconfig_kept_in_a_variable",
               "copy_taken_before_qconfig", "fused_copy_before_qconfig", "student_without_qconfig",
               "qat_with_ptq_qconfig", "qat_with_default_qconfig", "qat_with_observer_qconfig",
               "qat_backend_switch"),
        ("call", "qat_backend_switch", ("qnnpack",)),
        *calls("qat_with_fake_quant_qconfig"),
        ("call", "qat_or_observe", (True,)),
        *calls("class_sets_qconfig", "quantize_backbone_only", "qconfig_on_every_module",
               "copy_taken_after_qconfig"),
    ],
    "calibration_flows.py": [
        ("call", "quantize_static", (loader,)),
        *calls("prepare_then_convert"),
        ("call", "calibrated_before_prepare", (loader,)),
        *calls("one_line_quantize"),
        ("call", "wrapper_calibrated_on_float", (loader,)),
        ("call", "convert_a_copy_early", (loader,)),
        ("call", "maybe_calibrate", (loader, True)),
        *calls("calibrate_with_zeros", "calibrate_with_full_tensor", "calibrate_with_example_input"),
        ("call", "shape_check_then_calibrate", (loader,)),
        *calls("calibrate_on_random_batches"),
    ],
    "argparse_ptq_qat.py": [
        ("call", "main", (["--mode", "ptq"],)),
        ("call", "main", (["--mode", "qat", "--backend", "qnnpack"],)),
        ("call", "finetune_main", (["--mode", "qat"],)),
        ("call", "finetune_main", (["--mode", "ptq"],)),
        ("call", "qat_main", ([],)),
        ("call", "export_main", ([],)),
        ("call", "calibration_main", ([],)),
    ],
    "trainer_class.py": [("call", "main", (stage,))
                         for stage in ("qat", "ptq", "qat-copy", "qat-folded", "export", "quick")],
    "lightning_hooks.py": [("call", "cli_main", ("fit",)), ("call", "cli_main", ("test",))],
    "export_pipeline.py": [
        ("call", "quantize_checkpoint", (saved_model("TinyDetector", "eval"), output("ckpt.pt"))),
        ("call", "quantize_from_factory", (wrapped_factory, output("factory.pt"))),
        *calls("qat_from_registry", "export_mobile", "export_with_example_input",
               "qat_after_export_fusion", "qat_finetune", "quantize_unwrapped"),
    ],
}


class Recorder:
    """Hooks into torch and collects (code, frames, detail) hazard events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple, str]] = []
        self.notes: list[str] = []
        self.repair = False
        self.suspended = False
        self.depth = 0
        self.window: list[torch.nn.Module] = []
        self.stepped = False
        self.optimizers: list = []
        self.lineages: dict[int, dict] = {}
        self.last_shape = None

    # ---- stack attribution -------------------------------------------------------------
    @staticmethod
    def frames() -> tuple:
        out = []
        frame = sys._getframe(1)
        verify_dir = Path(__file__).resolve().parent
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if path.parent == CORPUS and path.suffix == ".py" and path.parent != verify_dir:
                start = end = frame.f_lineno
                positions = list(frame.f_code.co_positions())
                index = frame.f_lasti // 2
                if 0 <= index < len(positions) and positions[index][0] is not None:
                    start, end = positions[index][0], positions[index][1] or positions[index][0]
                out.append((path.name, start, end))
            frame = frame.f_back
        return tuple(out)

    def event(self, code: str, frames: tuple, detail: str) -> None:
        self.events.append((code, frames, detail))

    # ---- forwards ------------------------------------------------------------------------
    def pre_forward(self, module, args):
        if self.suspended:
            return
        if self.depth == 0:
            if self.stepped:
                self.window, self.stepped = [], False
            self.window.append(module)
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if tensors:
                self.last_shape = tuple(tensors[0].shape)
        self.depth += 1
        lineage = module.__dict__.get("_c8_lineage")
        if lineage is not None and lineage in self.lineages:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            constant = bool(tensors) and all(
                t.numel() > 0 and bool((t == t.reshape(-1)[0]).all()) for t in tensors
            )
            state = self.lineages[lineage]
            state["forwards"].append((self.frames(), constant))
            if tensors:
                state["shape"] = tuple(tensors[0].shape)

    def post_forward(self, module, args, output):
        if self.suspended:
            return
        self.depth = max(0, self.depth - 1)

    # ---- optimizers ----------------------------------------------------------------------
    def optimizer_built(self, optimizer) -> None:
        optimizer._c8_frames = self.frames()
        self.optimizers.append(optimizer)

    def optimizer_step(self, optimizer, args, kwargs):
        if self.suspended:
            return
        self.stepped = True
        own = {id(p) for g in optimizer.param_groups for p in g["params"]}
        held = {id(p) for o in self.optimizers for g in o.param_groups for p in g["params"]}
        trained = {}
        for root in self.window:
            params = [p for p in root.parameters() if p.requires_grad and p.grad is not None]
            trained[id(root)] = (root, params)
        touched = [r for r, ps in trained.values() if any(id(p) in own for p in r.parameters())]
        with_grad = [p for _, ps in trained.values() for p in ps]
        frames = getattr(optimizer, "_c8_frames", ())
        if not touched and with_grad:
            self.event("QL601", frames, f"optimizer holds none of the {len(with_grad)} parameters "
                       "that got gradients (it was built on another model object)")
            return
        for root in touched:
            missing = [p for p in trained[id(root)][1] if id(p) not in held]
            if missing:
                shapes = sorted({tuple(p.shape) for p in missing})
                self.event("QL601", frames, f"{len(missing)} trained parameters in no optimizer "
                           f"(shapes {shapes[:3]})")

    # ---- fusion --------------------------------------------------------------------------
    def wrap_fusion(self, original, is_qat: bool):
        recorder = self

        def fusion(model, modules_to_fuse, *args, **kwargs):
            groups = modules_to_fuse
            if groups and isinstance(groups[0], str):
                groups = [groups]
            frames = recorder.frames()
            folded = []
            for group in groups:
                mods = [model.get_submodule(n) for n in group]
                has_bn = any(isinstance(m, BATCHNORMS) for m in mods)
                if not is_qat and has_bn:
                    folded.append(group[0])
                    if recorder.repair and any(m.training for m in mods):
                        for m in mods:
                            m.eval()
            try:
                result = original(model, modules_to_fuse, *args, **kwargs)
            except AssertionError as error:
                if "Fusion only for eval" in str(error):
                    recorder.event("QL603", frames, f"AssertionError: {error}")
                raise
            for name in folded:
                result.get_submodule(name).__dict__["_c8_folded"] = frames
            return result

        return fusion

    # ---- prepare / convert ---------------------------------------------------------------
    def wrap_prepare(self, original, qat: bool):
        recorder = self

        def prepare(model, *args, **kwargs):
            frames = recorder.frames()
            if qat:
                folded = [m.__dict__["_c8_folded"] for m in model.modules() if "_c8_folded" in m.__dict__]
                for fusion_frames in folded:
                    bns = sum(isinstance(m, BATCHNORMS) for m in model.modules())
                    recorder.event("QL602", fusion_frames, f"prepare_qat of a model with BN folded "
                                   f"by eval fusion ({bns} BatchNorm left in the model)")
            recorder.suspended = True
            try:
                reference = copy.deepcopy(model)
            finally:
                recorder.suspended = False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = original(model, *args, **kwargs)
            said = [str(w.message)[:60] for w in caught if "qconfig" in str(w.message)]
            observers = [m for m in result.modules() if isinstance(m, (ObserverBase, FakeQuantizeBase))]
            if not observers:
                recorder.event("QL605", frames, f"0 observers / fake-quants inserted; warned: {said}")
            if qat:
                weights = [type(m.weight_fake_quant).__name__ for m in result.modules()
                           if hasattr(m, "weight_fake_quant")
                           and not isinstance(m.weight_fake_quant, FakeQuantizeBase)]
                if weights:
                    recorder.event("QL604", frames, f"weight_fake_quant is {sorted(set(weights))}")
            lineage = len(recorder.lineages) + 1
            result.__dict__["_c8_lineage"] = lineage
            recorder.lineages[lineage] = {"qat": qat, "forwards": [], "float": reference,
                                          "shape": None}
            return result

        return prepare

    def wrap_convert(self, original):
        recorder = self

        def convert(model, *args, **kwargs):
            frames = recorder.frames()
            lineage = next((m.__dict__["_c8_lineage"] for m in model.modules()
                            if "_c8_lineage" in m.__dict__), None)
            state = recorder.lineages.get(lineage)
            observers = [m for m in model.modules() if isinstance(m, ObserverBase)]
            fake = [m for m in model.modules() if isinstance(m, FakeQuantizeBase)]
            ptq = state is not None and not state["qat"] and observers and not fake
            unseen = [o for o in observers if hasattr(o, "min_val")
                      and (o.min_val.numel() == 0 or bool(torch.isinf(o.min_val).all()))]
            flat = [o for o in observers if hasattr(o, "min_val") and o.min_val.numel() == 1
                    and not torch.isinf(o.min_val) and bool(o.min_val == o.max_val)]
            recorder.suspended = True
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    result = original(model, *args, **kwargs)
            finally:
                recorder.suspended = False
            said = sorted({str(w.message)[:50] for w in caught if "observer" in str(w.message)})
            result.__dict__.pop("_c8_lineage", None)
            if not ptq:
                return result
            sqnr = recorder.sqnr(state, result)
            if len(unseen) == len(observers):
                recorder.event("QL606", frames, f"{len(observers)} observers never ran; "
                               f"warned {said}; SQNR int8 vs float {sqnr}")
            else:
                forwards = state["forwards"]
                if forwards and all(constant for _, constant in forwards):
                    for forward_frames, _ in forwards:
                        recorder.event("QL607", forward_frames, f"{len(flat)} observers with "
                                       f"min == max; SQNR int8 vs float {sqnr}")
                else:
                    recorder.notes.append(f"clean PTQ convert at {frames[:1]}: SQNR {sqnr}")
            return result

        return convert

    def sqnr(self, state, quantized) -> str:
        shapes = [s for s in (state["shape"], self.last_shape) if s] + list(PROBE_SHAPES)
        self.suspended = True
        try:
            generator = torch.Generator().manual_seed(1)
            reference = state["float"].eval()
            with torch.no_grad():
                for shape in shapes:
                    x = torch.randn(shape, generator=generator)
                    try:
                        ref = reference(x)
                        break
                    except RuntimeError:
                        continue
                out = quantized(x)
            if out.is_quantized:
                out = out.dequantize()
            noise = (ref - out).pow(2).sum().item()
            signal = ref.pow(2).sum().item()
            return f"{10 * math.log10(signal / max(noise, 1e-20)):.1f} dB"
        except Exception as error:  # the measurement only informs; a crash here is reported
            return f"n/a ({type(error).__name__}: {str(error)[:60]})"
        finally:
            self.suspended = False

    # ---- installation ----------------------------------------------------------------------
    def install(self) -> None:
        self.engine = torch.backends.quantized.engine
        self.handles = [
            torch.nn.modules.module.register_module_forward_pre_hook(self.pre_forward),
            torch.nn.modules.module.register_module_forward_hook(self.post_forward),
            register_optimizer_step_pre_hook(self.optimizer_step),
        ]
        recorder = self
        original_init = torch.optim.Optimizer.__init__

        def init(optimizer, *args, **kwargs):
            original_init(optimizer, *args, **kwargs)
            recorder.optimizer_built(optimizer)

        torch.optim.Optimizer.__init__ = init
        fusion_module = sys.modules["torch.ao.quantization.fuse_modules"]
        wrapped = {
            "fuse_modules": self.wrap_fusion(fusion_module.fuse_modules, is_qat=False),
            "fuse_modules_qat": self.wrap_fusion(fusion_module.fuse_modules_qat, is_qat=True),
            "prepare": self.wrap_prepare(getattr(ao, "prepare"), qat=False),
            "prepare_qat": self.wrap_prepare(getattr(ao, "prepare_qat"), qat=True),
            "convert": self.wrap_convert(getattr(ao, "convert")),
        }
        import torch.quantization as legacy
        for name, function in wrapped.items():
            setattr(ao, name, function)
            setattr(legacy, name, function)

    def reset(self) -> None:
        torch.backends.quantized.engine = self.engine
        self.depth, self.window, self.stepped, self.optimizers = 0, [], False, []
        self.last_shape = None


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"corpus8_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.save pickles the script's classes by module name
    spec.loader.exec_module(module)
    return module


def run_scenario(recorder: Recorder, path: Path, scenario: tuple, tmp: Path) -> str:
    torch.manual_seed(0)
    recorder.reset()
    if scenario[0] == "run_path":
        runpy.run_path(str(path), run_name="__main__")
        return "ran"
    _, function, args = scenario
    module = load(path)
    built = [a(module, tmp) if callable(a) else a for a in args]
    getattr(module, function)(*built)
    return "ran"


def labels(path: Path) -> dict[tuple[int, str], str]:
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for kind, pattern in LABELS.items():
            match = pattern.search(line)
            for code in match.group(1).split(",") if match else ():
                if code.strip():
                    out[(number, code.strip())] = kind
    return out


def verify(paths: list[Path]) -> int:
    recorder = Recorder()
    recorder.install()
    failures = 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for path in paths:
            recorder.events = []
            for scenario in SCENARIOS.get(path.name, [("run_path",)]):
                recorder.repair = False
                recorder.notes = []
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        outcome = run_scenario(recorder, path, scenario, tmp)
                except AssertionError as error:
                    if "Fusion only for eval" not in str(error):
                        failures += 1
                        print(f"FAIL {path.name} {scenario[:2]}: crashed\n{traceback.format_exc()}")
                        continue
                    outcome = "crashed: Fusion only for eval! (re-run repaired)"
                    recorder.repair = True
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            run_scenario(recorder, path, scenario, tmp)
                    except Exception:
                        failures += 1
                        print(f"FAIL {path.name} {scenario[:2]}: repaired run crashed\n"
                              f"{traceback.format_exc()}")
                except Exception:
                    failures += 1
                    print(f"FAIL {path.name} {scenario[:2]}: crashed\n{traceback.format_exc()}")
                    continue
                print(f"  {path.name} {scenario[1] if len(scenario) > 1 else 'as __main__'}"
                      f"{list(scenario[2]) if len(scenario) > 2 else ''}: {outcome}")
                for note in recorder.notes:
                    print(f"      note: {note}")
            failures += check(path, recorder.events, rows)
    print("\nfile:line  code  label  observed")
    for row in rows:
        print("  ".join(row))
    print(f"\n{'OK' if not failures else f'{failures} FAILURES'}")
    return 1 if failures else 0


def check(path: Path, events, rows) -> int:
    wanted = labels(path)
    failures = 0
    seen: dict[tuple[int, str], str] = {}
    for code, frames, detail in dict.fromkeys(events):
        lines = [(start, end) for name, start, end in frames if name == path.name]
        hit = [key for key in wanted if key[1] == code and any(s <= key[0] <= e for s, e in lines)]
        if not hit:
            failures += 1
            where = ", ".join(f"{n}:{s}" for n, s, _ in frames)
            print(f"FAIL {path.name}: {code} observed at [{where}] but not labeled: {detail}")
            continue
        for key in hit:
            seen.setdefault(key, detail)
    for (line, code), kind in sorted(wanted.items()):
        observed = seen.get((line, code))
        if kind == "expect" and observed is None:
            failures += 1
            print(f"FAIL {path.name}:{line}: {code} expected but not observed")
        rows.append((f"{path.name}:{line}", code, kind, observed or "not observed"))
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.files] or sorted(CORPUS.glob("*.py"))
    return verify(paths)


if __name__ == "__main__":
    sys.exit(main())
