"""The evaluation's figures, as PNG files in ``<run_dir>/eval``.

* ``fig2_triplets.png``: like the seed's Fig. 2, rows of input | reference |
  LEED edit (``leed_tf.inference.files.triplet_sheet``).
* ``comparison.png``: the same pairs with every method side by side (and the
  ground truth on synthetic data).
* ``fig3_expressions.png``: like the seed's Fig. 3, one row per input (a
  neutral face), one column per expression; on synthetic data each row of
  LEED edits is followed by its ground truth.
* ``loss_curves.png``: every loss of every stage and the validation metrics,
  read from the run's TensorBoard logs.
* ``chart_*.png``: bar charts of the metrics (overall, per expression, per pose).
"""

from __future__ import annotations

import os

import numpy as np

from leed_tf.run_folder import STAGES
from leed_tf.data.sheets import contact_sheet
from leed_tf.inference.files import save_image, triplet_sheet
from leed_tf.evaluation import charts
from leed_tf.evaluation.events import run_scalars
from leed_tf.evaluation.examples import Examples
from leed_tf.evaluation.methods import METHODS, NEUTRAL_ANCHORED, SHORT_NAMES

# Highlighted in the charts.
LEED_METHODS = ("leed", "leed_residual", "leed_neutral_residual")

# Bar charts of each protocol: metric key -> (title, value format).
SYNTHETIC_CHARTS = {
    "psnr": ("PSNR against the ground truth (dB, higher is better)", "{:.2f}"),
    "ssim": ("SSIM against the ground truth (higher is better)", "{:.3f}"),
    "l1": ("L1 against the ground truth ([-1, 1] units, lower is better)", "{:.3f}"),
    "expression_accuracy": ("expression accuracy (classifier says the reference's expression)", "{:.1%}"),
    "identity_retention": ("identity retention (classifier says the input's identity)", "{:.1%}"),
}
REAL_CHARTS = {
    "expression_accuracy": ("expression accuracy (classifier says the reference's expression)", "{:.1%}"),
    "fid": ("FID against the real held-out faces (lower is better)", "{:.2f}"),
    "identity_distance": ("dlib embedding distance to the input (lower is better)", "{:.3f}"),
    "same_person": ("same person by dlib (distance < 0.6)", "{:.1%}"),
}
# Per-group charts: metric key -> y range (None: from 0 to the largest value).
GROUP_CHARTS = {"psnr": None, "expression_accuracy": (0.0, 1.0)}


def comparison_sheet(examples: Examples, methods=None) -> np.ndarray:
    """Rows of example pairs: input | reference | each method | ground truth."""
    methods = [m for m in (methods or METHODS) if m in examples.edits]
    columns = [examples.inputs, examples.references] + [examples.edits[m] for m in methods]
    labels = ["input", "reference"] + [SHORT_NAMES[m] for m in methods]
    if examples.truths is not None:
        columns.append(examples.truths)
        labels.append("ground truth")
    tiles = np.stack(columns, axis=1).reshape((-1,) + examples.inputs.shape[1:])
    return contact_sheet(tiles, len(examples.inputs), len(columns), column_labels=labels)


def triplet_figure(examples: Examples, method: str = "leed") -> np.ndarray:
    """The seed's Fig. 2: input | reference | result."""
    return triplet_sheet(examples.inputs, examples.references, examples.edits[method])


def expression_figure(examples: Examples) -> np.ndarray | None:
    """The seed's Fig. 3: each input's LEED edits to every expression (and,
    with ground truth, a row of it under each row of edits). None without
    the data (no neutral faces)."""
    if examples.grid_edits is None:
        return None
    rows, labels = [], []
    blank = np.full_like(examples.grid_inputs[0], 255)
    for k, name in enumerate(examples.grid_names):
        rows.append(np.concatenate([examples.grid_inputs[k][None], examples.grid_edits[k]]))
        labels.append(name)
        if examples.grid_truths is not None:
            rows.append(np.concatenate([blank[None], examples.grid_truths[k]]))
            labels.append("truth")
    tiles = np.concatenate(rows)
    return contact_sheet(tiles, len(rows), len(examples.grid_expressions) + 1,
                         column_labels=["input"] + list(examples.grid_expressions), row_labels=labels)


def loss_curve_figure(run_dir: str) -> np.ndarray | None:
    """One panel per training loss (``losses/<stage>/<name>``) and per
    validation metric (``metrics/<stage>/<name>``); None when the logs hold
    no scalar (e.g. a run shorter than its logging interval)."""
    logs = run_scalars(run_dir)
    panels = []
    for log, prefix in (("train", "losses/"), ("validation", "metrics/")):
        for tag, (steps, values) in sorted(logs[log].items(), key=lambda item: _stage_order(item[0])):
            if tag.startswith(prefix):
                title = tag[len(prefix):] + (" (validation)" if log == "validation" else "")
                panels.append(charts.Panel(title, [(tag, steps, values)]))
    if not panels:
        return None
    name = os.path.basename(os.path.abspath(run_dir))
    return charts.line_panels(panels, columns=4, title=f"Training curves of {name}")


def _stage_order(tag: str):
    """Tags ``<group>/<stage>/<name>`` in training order of their stages."""
    parts = tag.split("/")
    stage = parts[1] if len(parts) > 2 else ""
    return (STAGES.index(stage) if stage in STAGES else len(STAGES), tag)


def metric_charts(metrics: dict) -> dict[str, np.ndarray]:
    """Bar charts of an evaluation's metrics, by file name (``chart_*.png``)."""
    synthetic = metrics["protocol"] == "synthetic"
    chosen = SYNTHETIC_CHARTS if synthetic else REAL_CHARTS
    methods = [m for m in METHODS if m in metrics["methods"]]
    baseline = metrics.get("ground_truth" if synthetic else "real_faces", {})
    out = {}
    # The neutral-anchored methods are averaged over the pairs whose target
    # is not neutral: they are charted with every other method on those pairs.
    anchored = [m for m in methods if m in NEUTRAL_ANCHORED]
    for name, section, shown in (("chart_overall.png", "overall", [m for m in methods if m not in anchored]),
                                 ("chart_expressive_targets.png", "expressive_targets",
                                  methods if anchored else [])):
        panels = []
        for key, (title, fmt) in chosen.items():
            labels = [SHORT_NAMES[m] for m in shown]
            values = [_value(metrics["methods"][m], section, key) for m in shown]
            if key in baseline.get(section, {}):
                labels.append("ground truth" if synthetic else "real faces")
                values.append(baseline[section][key])
            if all(v is None for v in values):
                continue
            title = title if section == "overall" else f"{title}, targets other than neutral"
            panels.append(charts.bar_chart(title, labels, values, value_format=fmt,
                                           highlight=[SHORT_NAMES[m] for m in LEED_METHODS]))
        if panels:
            out[name] = np.concatenate(panels)
    for section, groups in (("per_expression", metrics["pairs"]["expressions"]),
                            ("per_pose", None)):
        available = [m for m in methods if metrics["methods"][m]["available"]
                     and (section == "per_expression" or m not in anchored)]
        for key, value_range in GROUP_CHARTS.items():
            if key not in chosen or not available:
                continue
            names = groups or list(metrics["methods"][available[0]].get(section, {}))
            names = [g for g in names if any(g in metrics["methods"][m].get(section, {}) for m in available)]
            series = {SHORT_NAMES[m]: [_value(metrics["methods"][m], section, key, g) for g in names]
                      for m in available}
            if not names or all(v is None for values in series.values() for v in values):
                continue
            title = f"{chosen[key][0]} by {'target expression' if section == 'per_expression' else 'input yaw'}"
            out[f"chart_{key}_{section}.png"] = charts.grouped_bar_chart(
                title, names, series, value_range=value_range,
                value_format="{:.0%}" if key.endswith("accuracy") else "{:.1f}")
    return out


def _value(entry: dict, section: str, key: str, group: str | None = None):
    values = entry.get(section, {})
    if group is not None:
        values = values.get(group, {})
    return values.get(key)


def write_figures(examples: Examples, metrics: dict, run_dir: str, out_dir: str) -> list[str]:
    """Writes every figure and chart into ``out_dir``; returns the paths."""
    images = {"fig2_triplets.png": triplet_figure(examples) if "leed" in examples.edits else None,
              "comparison.png": comparison_sheet(examples),
              "fig3_expressions.png": expression_figure(examples),
              "loss_curves.png": loss_curve_figure(run_dir),
              **metric_charts(metrics)}
    return [save_image(image, os.path.join(out_dir, name)) for name, image in images.items()
            if image is not None]
