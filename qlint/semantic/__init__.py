"""The semantic model rules query: names, classes, attributes, the forward path.

The package reads bottom-up; a module imports only modules listed before it in `LAYERS`
(tests/lint/test_layers.py checks it):

- syntax and names: `walk` (a read-only tree walk), `positions` (where reported nodes are),
  `names` (qualified names through imports), `torch_api` (what torch classes and measured
  crash tables say), `ops` (the op table: how each known op's result is derived),
  `values` (the typed abstract values);
- `summaries` (what a file tells the others, pickleable), `index` (the project index over
  every file's summaries), `scope` (one file's names and classes);
- interpreters: `interpret` (the statement walker and binder both passes share), `init`
  (the `__init__` pass), `forward` (the forward pass and its trace), `fusion` (fuse groups
  and fusible chains), `pipeline` (the quantization script: fuse, prepare, calibrate, convert);
- `model`: the FileModel rules query.
"""

LAYERS = ("walk", "positions", "names", "torch_api", "ops", "values", "summaries", "index", "scope",
          "interpret", "init", "forward", "fusion", "pipeline", "model")
