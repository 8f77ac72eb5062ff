"""``QuantReport.to_html``: one self-contained HTML file (inline CSS, plots as base64 PNG).

Plots need matplotlib (``pip install 'torch-qlint[report]'``); without it the page has
the tables only and says why. Drawn with matplotlib's object API on the Agg canvas, so
no pyplot state or display is touched.
"""

from __future__ import annotations

import base64
import html
import io
import math

from qlint.runtime.report import COLUMNS, QuantReport, _db, _number, _share, layer_label

_INSTALL_HINT = "pip install 'torch-qlint[report]'"
_HISTOGRAM_COLUMNS = 4
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; } td.text { text-align: left; }
tr.worst td { background: #fde2e2; }
.pass { color: #17692b; font-weight: bold; } .fail { color: #a3161b; font-weight: bold; }
pre { background: #f6f6f6; padding: 0.6em; white-space: pre-wrap; font-size: 0.85em; }
.note { background: #fff7d6; padding: 0.5em; border: 1px solid #e6d27a; }
img { max-width: 100%; }
"""


def render_html(report: QuantReport) -> str:
    """The report as an HTML page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>qlint report: {_e(report.model)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Quantization report: {_e(report.model)}</h1>",
        f"<p>{_e(report.headline())}</p>",
    ]
    parts += [f'<p class="note">{_e(note)}</p>' for note in report.notes]
    if report.checks:
        parts.append("<h2>Runtime checks</h2><table><tr><th>check</th><th>result</th></tr>")
        for check in report.checks:
            verdict = '<span class="pass">pass</span>' if check.passed else '<span class="fail">FAIL</span>'
            parts.append(f'<tr><td class="text">{_e(check.name)}</td><td class="text">{verdict}</td></tr>')
        parts.append("</table>")
        parts += [
            f"<h3>{_e(check.name)}</h3><pre>{_e(check.message)}</pre>"
            for check in report.failed_checks
        ]
    parts.append("<h2>Layers ranked by sensitivity (worst first)</h2>")
    parts.append(_ranked_table(report))
    parts.append("<h2>Plots</h2>")
    plots = _plots(report)
    if isinstance(plots, str):
        parts.append(f'<p class="note" id="no-plots">{_e(plots)}</p>')
    else:
        for title, png in plots:
            encoded = base64.b64encode(png).decode("ascii")
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.append(f'<img class="plot" alt="{_e(title)}" src="data:image/png;base64,{encoded}">')
    parts.append("<h2>All columns, in model order</h2>")
    parts.append(_full_table(report))
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(text) -> str:
    return html.escape(str(text))


def _ranked_table(report: QuantReport) -> str:
    header = ("rank", "layer", "kind", "sensitivity dB", "SQNR dB", "activation SQNR dB",
              "clipped", "converted vs fake-quant dB", "scale", "zero point", "fake-quant")
    rows = ["<table><tr>" + "".join(f"<th>{_e(cell)}</th>" for cell in header) + "</tr>"]
    for rank, row in enumerate(report.ranked(), start=1):
        cells = [
            str(rank),
            layer_label(row),
            row["kind"] + (" (fused)" if row["fused"] else ""),
            _db(row["sensitivity_db"]),
            _db(row["sqnr_db"]),
            _db(row["activation_sqnr_db"]),
            _share(row["clipped_share"]),
            _db(row["converted_sqnr_db"]),
            _number(row["scale"]),
            "-" if row["zero_point"] is None else str(row["zero_point"]),
            row["fake_quant"] or "-",
        ]
        css = ' class="worst"' if rank == 1 and row["sensitivity_db"] is not None else ""
        rows.append(
            f"<tr{css}>"
            + "".join(
                f'<td class="text">{_e(cell)}</td>' if index in (1, 2, 10) else f"<td>{_e(cell)}</td>"
                for index, cell in enumerate(cells)
            )
            + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _full_table(report: QuantReport) -> str:
    rows = ["<table><tr>" + "".join(f"<th>{_e(column)}</th>" for column in COLUMNS) + "</tr>"]
    for row in report.rows:
        rows.append(
            "<tr>" + "".join(f'<td class="text">{_e(_cell(row[column]))}</td>' for column in COLUMNS) + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def _plots(report: QuantReport) -> list[tuple[str, bytes]] | str:
    """(title, PNG bytes) per plot, or why there are none."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        return (
            f"No plots: matplotlib is not installed ({error}). Install the report extra to "
            f"get them: {_INSTALL_HINT}"
        )
    if not report.rows:
        return "No plots: the report has no rows."

    def png(figure) -> bytes:
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    plots = [("Per-layer SQNR (quantized model vs float), model order", png(_bars(
        Figure, [row["name"] for row in report.rows], [row["sqnr_db"] for row in report.rows],
        "SQNR of the layer output, dB (higher is better)", "#4c72b0")))]
    swept = [row for row in report.ranked() if row["sensitivity_db"] is not None]
    if swept:
        plots.append(("Sensitivity: model output SQNR with only this layer quantized, worst first",
                      png(_bars(Figure, [row["name"] for row in swept],
                                [row["sensitivity_db"] for row in swept],
                                "model output SQNR, dB (lower is worse)", "#c44e52"))))
    if report.histograms:
        plots.append(("Float output range per layer, with the quantization range (red lines)",
                      png(_histograms(Figure, report))))
    return plots


def _bars(Figure, names, values, label, color):
    finite = [value for value in values if value is not None and math.isfinite(value)]
    ceiling = (max(finite) if finite else 0.0) + 10.0
    shown = [ceiling if value is not None and math.isinf(value) else (value or 0.0) for value in values]
    figure = Figure(figsize=(8, 0.32 * len(names) + 1.2), layout="constrained")
    axes = figure.add_subplot()
    positions = range(len(names))
    axes.barh(list(positions), shown, color=color)
    axes.set_yticks(list(positions), labels=names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(label)
    for position, value, drawn in zip(positions, values, shown):
        text = "not measured" if value is None else ("inf" if math.isinf(value) else f"{value:.1f}")
        axes.text(drawn, position, f" {text}", va="center", fontsize=7)
    axes.set_xlim(min(0.0, min(shown)), ceiling * 1.15 if ceiling > 0 else 1.0)
    return figure


def _histograms(Figure, report):
    names = [row["name"] for row in report.rows if row["name"] in report.histograms]
    columns = min(_HISTOGRAM_COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.2 * rows), layout="constrained")
    for index, name in enumerate(names, start=1):
        data = report.histograms[name]
        axes = figure.add_subplot(rows, columns, index)
        bins = len(data["counts"])
        width = (data["high"] - data["low"]) / bins
        edges = [data["low"] + width * bin_index for bin_index in range(bins)]
        axes.bar(edges, data["counts"], width=width, align="edge", color="#55a868")
        for bound in (data["quant_low"], data["quant_high"]):
            if bound is not None:
                axes.axvline(bound, color="#c44e52", linewidth=1)
        axes.set_title(name, fontsize=8)
        axes.tick_params(labelsize=6)
    return figure
