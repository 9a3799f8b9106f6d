"""Markdown tables of an evaluation's metrics (``<run_dir>/eval/results.md``)."""

from __future__ import annotations

import math

from leed_tf.evaluation.methods import METHODS, NEUTRAL_ANCHORED, SHORT_NAMES

# Columns of each protocol's tables: metric key -> (header, format).
SYNTHETIC_COLUMNS = {
    "psnr": ("PSNR (dB)", "{:.2f}"), "ssim": ("SSIM", "{:.3f}"), "l1": ("L1", "{:.3f}"),
    "expression_accuracy": ("expression acc.", "{:.1%}"), "identity_retention": ("identity retention", "{:.1%}"),
}
REAL_COLUMNS = {
    "expression_accuracy": ("expression acc.", "{:.1%}"), "fid": ("FID", "{:.2f}"),
    "identity_distance": ("dlib distance", "{:.3f}"), "same_person": ("same person (dlib)", "{:.1%}"),
}
# Breakdown tables (rows: groups, columns: methods) of each protocol.
SYNTHETIC_BREAKDOWNS = ("psnr", "expression_accuracy", "identity_retention")
REAL_BREAKDOWNS = ("expression_accuracy", "same_person")


def _columns(metrics: dict) -> dict:
    return SYNTHETIC_COLUMNS if metrics["protocol"] == "synthetic" else REAL_COLUMNS


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value).replace("%", " %")


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def overall_table(metrics: dict, section: str = "overall") -> str:
    """One row per method (and the classifiers' ceiling), one column per
    metric: the means of ``section`` (``overall``, or ``expressive_targets``:
    the pairs whose target is not neutral). In the ``overall`` table the
    neutral-anchored methods, averaged over those pairs only, are marked ².
    """
    columns = _columns(metrics)
    lines = [_row(["method"] + [header for header, _ in columns.values()]),
             _row(["---"] + ["---:"] * len(columns))]
    for name in METHODS:
        entry = metrics["methods"].get(name)
        if entry is None:
            continue
        if not entry["available"]:
            lines.append(_row([f"{entry['description']} (unavailable¹)"] + ["n/a"] * len(columns)))
            continue
        marked = section == "overall" and name in NEUTRAL_ANCHORED
        lines.append(_row([entry["description"] + (" ²" if marked else "")] +
                          [_cell(entry.get(section, {}).get(k), fmt) for k, (_, fmt) in columns.items()]))
    ceiling = metrics.get("ground_truth") or metrics.get("real_faces")
    if ceiling and section in ceiling:
        label = ("ground-truth renders themselves (the classifiers' ceiling)" if "ground_truth" in metrics
                 else "real held-out faces (the classifier's ceiling)")
        lines.append(_row([label] + [_cell(ceiling[section].get(k), fmt) if k in ceiling[section] else "—"
                                     for k, (_, fmt) in columns.items()]))
    return "\n".join(lines)


def breakdown_table(metrics: dict, section: str, key: str) -> str:
    """Rows: the groups of ``section`` (``per_expression`` or ``per_pose``);
    columns: the available methods; cells: metric ``key``."""
    header, fmt = _columns(metrics)[key]
    # Per pose, the neutral-anchored methods (means over other pairs) are left out.
    methods = [m for m in METHODS if metrics["methods"].get(m, {}).get("available")
               and (section == "per_expression" or m not in NEUTRAL_ANCHORED)]
    groups = []
    for m in methods:
        groups += [g for g in metrics["methods"][m].get(section, {}) if g not in groups]
    if not groups:
        return ""
    ceiling = (metrics.get("ground_truth") or {}).get(section, {})
    with_ceiling = any(key in ceiling.get(g, {}) for g in groups)
    first = "target expression" if section == "per_expression" else "input yaw (°)"
    lines = [_row([first] + [SHORT_NAMES[m] for m in methods] + (["ground truth"] if with_ceiling else [])),
             _row(["---"] + ["---:"] * (len(methods) + with_ceiling))]
    for g in groups:
        cells = [_cell(metrics["methods"][m].get(section, {}).get(g, {}).get(key), fmt) for m in methods]
        if with_ceiling:
            cells.append(_cell(ceiling.get(g, {}).get(key), fmt))
        lines.append(_row([g] + cells))
    return f"{header} by {first}:\n\n" + "\n".join(lines)


def summary_tables(metrics: dict) -> list[str]:
    """The overall table and, when neutral-anchored methods were measured,
    their note and the table of every method on the pairs whose target is
    not neutral (Markdown blocks, each followed by an empty line)."""
    out = [overall_table(metrics), ""]
    if any(metrics["methods"].get(m, {}).get("available") for m in NEUTRAL_ANCHORED):
        out += ["² Anchored at the input's neutral face: an edit towards neutral is that face itself, so "
                "these rows are means over the pairs whose target is not neutral; the next table compares "
                "every method on those pairs.", "",
                f"## Edits towards an expression other than neutral ({metrics['pairs'].get('expressive', '?')} "
                "pairs)", "", overall_table(metrics, "expressive_targets"), ""]
    return out


def neutralizer_table(metrics: dict) -> list[str]:
    """The neutralizer's faces against the real neutral renders (synthetic
    runs with a StarGAN neutralizer), as Markdown lines; else none."""
    block = metrics.get("neutralizer")
    if not block:
        return []
    out = [f"## Neutralizer ({block['faces']} held-out expressive faces)", "", block["description"] + ".", "",
           "| | PSNR (dB) | SSIM | classified neutral | identity retention |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in ("copy_input", "neutralizer"):
        row = block[name]
        cells = [f"{row['psnr']:.2f}", f"{row['ssim']:.3f}"] + [
            f"{100 * row[k]:.1f} %" if k in row else "" for k in ("classified_neutral", "identity_retention")]
        out.append(_row([name] + cells))
    return out + [""]


def markdown_report(metrics: dict) -> str:
    """The whole ``results.md``: how it was made, the overall table, the
    breakdowns, the classifiers and what was unavailable."""
    run, pairs = metrics["run"], metrics["pairs"]
    out = [f"# Evaluation of `{run['run_dir']}`", "",
           "```bash", metrics.get("command", "python scripts/evaluate.py --run_dir=" + run["run_dir"]), "```", "",
           f"- Protocol: **{metrics['protocol']}**; {pairs['count']} pairs: {pairs['description']}.",
           f"- Held-out subjects: {', '.join(pairs['held_out_subjects'])}.",
           f"- Run: dataset {run['dataset']}, width {run['width']}, neutral faces from "
           f"{'the StarGAN neutralizer' if run['neutral_source'] == 'stargan' else 'the data set (real)'}."]
    if run["unfinished_stages"]:
        out.append(f"- **Unfinished stages** (latest checkpoints used): {', '.join(run['unfinished_stages'])}.")
    if metrics["protocol"] == "synthetic":
        out.append("- Images in [-1, 1]: PSNR over the whole 128×128 face with range 2; L1 in [-1, 1] units.")
    out += ["", "## All methods", ""] + summary_tables(metrics)
    if metrics["protocol"] == "synthetic":
        out += ["The identity classifier is trained on every render of every identity, the ground-truth "
                "renders included, so its ground-truth row is near 100 % by construction; its accuracy on "
                "renders it never saw is under Classifiers. The expression classifier never saw the "
                "held-out identities.", ""]
    out += neutralizer_table(metrics)
    unavailable = [(m, e) for m, e in metrics["methods"].items() if not e["available"]]
    for name, entry in unavailable:
        out.append(f"¹ {name}: {entry['reason']}.")
    if unavailable:
        out.append("")
    keys = SYNTHETIC_BREAKDOWNS if metrics["protocol"] == "synthetic" else REAL_BREAKDOWNS
    for section, title in (("per_expression", "Per target expression"), ("per_pose", "Per input pose")):
        tables = [t for t in (breakdown_table(metrics, section, k) for k in keys) if t]
        if tables:
            out += [f"## {title}", ""] + [x for t in tables for x in (t, "")]
    out += _notes(metrics)
    return "\n".join(out).rstrip() + "\n"


def _notes(metrics: dict) -> list[str]:
    out = ["## Classifiers", ""]
    for kind, info in metrics.get("classifiers", {}).items():
        out.append(f"- {kind}: `{info.get('path', '')}`{' (trained now)' if info.get('trained_now') else ''}; "
                   f"trained on {info.get('trained_on', '?')}; "
                   f"{_cell(info.get('validation_accuracy'), '{:.1%}')} on {info.get('checked_on', '?')}.")
    for what in ("fid", "identity"):
        section = metrics.get(what)
        if section and not section["available"]:
            out.append(f"- {'FID' if what == 'fid' else 'dlib identity similarity'} not computed: {section['reason']}")
    out += ["", f"Evaluation time: {metrics.get('seconds', 0):.0f} s."]
    return out
