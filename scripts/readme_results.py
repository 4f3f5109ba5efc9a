"""Write the README's results table from the JSON reports, so no figure is typed by hand.

    python scripts/readme_results.py          # rewrite the block in README.md
    python scripts/readme_results.py --check  # exit 1 if README.md differs from the reports

The block lies between `<!-- results:start -->` and `<!-- results:end -->`. A report
that has not been produced yet gives a row saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict | None:
    path = ROOT / "reports" / name
    return json.loads(path.read_text()) if path.is_file() else None


def rows() -> list[str]:
    out = [
        "| what | measured | bar | report |",
        "|---|---|---|---|",
    ]
    accuracy = _load("accuracy.json")
    if accuracy:
        runs = accuracy["runs"]
        for label, bar in (("humpback-flukes", 0.80), ("rightwhale", 0.60), ("happywhale", 0.60)):
            r = runs[label]
            out.append(
                f"| top-1 / top-5 / MAP@5, {label} (leave-one-out, weight-free) |"
                f" {r['top1']:.3f} / {r['top5']:.3f} / {r['map5']:.3f} | top-1 >= {bar} |"
                " [accuracy](reports/accuracy.md) |"
            )
        for label, bar in (
            ("humpback-flukes, default install", ">= 0.822 (weight-free before)"),
            ("rightwhale, default install", ">= 0.551 (weight-free before)"),
            ("happywhale + distractors, default install", ">= 0.70"),
        ):
            r = runs.get(label)
            if r is None:
                out.append(f"| top-1, {label} | not measured yet | top-1 {bar} | - |")
                continue
            out.append(
                f"| top-1, {label} (Lite0 gate, locator and embedding of frames,"
                f" {r.get('n_distractors', 0)}"
                f" distractors) | {r['top1']:.3f} | top-1 {bar} |"
                " [accuracy](reports/accuracy.md) |"
            )
        r = runs["humpback-flukes open set"]
        out.append(
            "| open set, humpback-flukes: `new_individual` precision / recall |"
            f" {r['new_individual_precision']:.2f} / {r['new_individual_recall']:.2f} |"
            " both >= 0.7 | [accuracy](reports/accuracy.md) |"
        )
        r = runs["humpback-flukes + rightwhale (one gallery)"]
        out.append(
            "| query p50 (features + search), flukes + right whale gallery |"
            f" {r['query_ms_p50']:.0f} ms | <= 200 ms | [accuracy](reports/accuracy.md) |"
        )
        gate = accuracy.get("gate", {"measured": False, "why": "not in this report"})
        measured = (
            f"{gate['model']}: TPR {gate['tpr']:.3f}, TNR {gate['tnr']:.3f},"
            f" AUC {gate['roc_auc']:.3f}"
            if gate["measured"]
            else "not measured (no gate weights here)"
        )
        out.append(
            f"| cetacean gate on the gate set | {measured} | TPR, TNR >= 0.95 |"
            " [accuracy](reports/accuracy.md) |"
        )
        if gate.get("acceptance"):
            worst = min(gate["acceptance"].items(), key=lambda item: item[1]["accepted"])
            out.append(
                "| gate acceptance, lowest over the identified sets |"
                f" {worst[1]['accepted']:.3f} ({worst[0]}) | >= 0.97 |"
                " [accuracy](reports/accuracy.md) |"
            )
    models = _load("models.json")
    if models:
        out.append(
            "| gate + embedding of a 1920x1080 photo, ONNX Runtime p50 (random weights) |"
            f" {models['ort_ms_p50']:.0f} ms, {models['speedup']:.2f}x torch eager |"
            " <= 450 ms, >= 1.5x | [models](reports/models.md) |"
        )
        if "lite0" in models:
            lite0 = models["lite0"]
            out.append(
                "| Lite0 gate + locator + embedding of a 1920x1080 photo, ONNX Runtime p50"
                f" (real weights) | {lite0['lite0_ms_p50']:.1f} ms (weight-free identify"
                f" {lite0['identify_ms_p50']:.0f} ms) | <= 60 ms | [models](reports/models.md) |"
            )
    scalability = _load("scalability.json")
    if scalability:
        engine_points = [point for point in scalability["global"] if point["engine_index"]]
        p = max(engine_points, key=lambda point: point["size"])
        out.append(
            f"| embedding search at {p['size']:,} vectors (synthetic, {p['index_kind']}):"
            " p50 / recall@10 |"
            f" {p['search_ms_p50']:.1f} ms / {p['recall_at_10']:.3f} | <= 10 ms / >= 0.95 |"
            " [scalability](reports/scalability.md) |"
        )
        local = scalability["descriptors"]
        engine_local = (
            [p for p in local["points"] if p["engine_index"]] if local["measured"] else []
        )
        for point in engine_local:
            # Issue 18's bar at this size (benchmark_scalability.identify_bar_ms): None sets none.
            bar = point["identify_bar_ms"]
            out.append(
                f"| weight-free identify at {point['photos']:,} photos ({point['data']}):"
                " p50 (features included) / local index per photo |"
                f" {point['identify_ms_p50']:.0f} ms / {point['index_kib_per_photo']:.1f} KiB |"
                f" {'-' if bar is None else f'<= {bar:g} ms'} / <= 50 KiB |"
                " [scalability](reports/scalability.md) |"
            )
    cluster = _load("cluster.json")
    if cluster:
        for row in cluster["sets"]:
            rates = row["photos_per_s"]
            out.append(
                f"| photos/s, {row['set']}: enrol / batch identify, one process against a"
                f" {cluster['workers']}-worker local Ray cluster |"
                f" {rates['enrol, one process']:.2f} / {rates['identify, one process']:.2f}"
                f" against {rates['enrol, cluster']:.2f} / {rates['identify, cluster']:.2f} |"
                " - | [cluster](reports/cluster.md) |"
            )
    noise = _load("noise.json")
    if noise:
        worst = max(
            (
                (s, name, drop)
                for s, r in noise["sets"].items()
                for name, drop in r["relative_drop"].items()
                if drop is not None
            ),
            key=lambda item: item[2],
        )
        out.append(
            f"| worst relative top-1 drop on degraded photos | {100 * worst[2]:.0f}%"
            f" ({worst[1]}, {worst[0]}) | <= 20% each | [noise](reports/noise.md) |"
        )
    latency = _load("latency.json")
    if latency:
        for label, p in latency["paths"].items():
            out.append(
                f"| HTTP end-to-end per photo, {label} | p50 {p['p50_ms']:.0f} / p95"
                f" {p['p95_ms']:.0f} / p99 {p['p99_ms']:.0f} ms | - | [latency](reports/latency.md) |"
            )
    service = _load("service.json")
    if service:
        load = service["load"]
        out.append(
            f"| HTTP under load ({load['clients']} clients), weight-free | {load['requests_per_s']:.2f}"
            f" requests/s, {load['errors']} errors; framework overhead p50"
            f" {service['overhead']['p50_ms']:.1f} ms | overhead <= 10 ms |"
            " [service](reports/service.md) |"
        )
    interface = _load("interface.json")
    if interface:
        shown = ("next photo", "confirm", "open an individual", "search (one character)")
        medians = [interface["actions"][name]["median_ms"] for name in shown]
        out.append(
            f"| web interface, keystroke to page updated ({interface['catalogue']['photos']:,}"
            f" synthetic photos): median {' / '.join(shown)} |"
            f" {' / '.join(f'{m:.0f}' for m in medians)} ms"
            f" | <= {interface['bar_ms']:.0f} ms | [interface](reports/interface.md) |"
        )
    return out


def block() -> str:
    return "\n".join([START, *rows(), END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    updated = head + block() + tail
    if args.check:
        if updated != text:
            print("README.md results differ from reports/; run scripts/readme_results.py")
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
