#!/usr/bin/env python3
"""Tables and a plot from hack/compare-strategies.sh's run directory.

    python3 hack/compare/report.py DIR

Reads DIR/<Strategy>.json (the load generator's reports), DIR/cookie-limit.json and
DIR/replication-messages.jsonl (Replicated's counters at 2, 4, 8 frontends); writes
DIR/report.md (Markdown tables, also printed) and DIR/strategies.png (needs matplotlib,
which hack/compare-strategies.sh installs at a pinned version).
"""
import json
import sys
from collections import Counter
from pathlib import Path

ORDER = ["Store", "Sticky", "Sticky-RF2", "Replicated", "Replicated-Sync", "Client"]
FAULTS = ["kill-frontend", "scale-to-6", "scale-to-2", "kill-store-pod", "partition", "healed"]


def load(run):
    reports = {}
    for name in ORDER:
        path = run / f"{name}.json"
        if path.exists():
            reports[name] = json.loads(path.read_text())
    return reports


def phase(report, name):
    return next((p for p in report["phases"] if p["phase"] == name), None)


def fmt(v):
    return "–" if v is None else f"{v:g}"


def latency_table(reports):
    rows = [
        "| strategy | session read p50 / p99 ms | session write p50 / p99 ms | request p50 / p99 ms | cookie bytes per request |",
        "|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        s = phase(r, "steady")
        if not s:
            continue
        rows.append(
            f"| {name} | {fmt(s['session_read_p50_ms'])} / {fmt(s['session_read_p99_ms'])} "
            f"| {fmt(s['session_write_p50_ms'])} / {fmt(s['session_write_p99_ms'])} "
            f"| {fmt(s['p50_ms'])} / {fmt(s['p99_ms'])} | {s.get('cookie_bytes_per_request', '–')} |"
        )
    return "\n".join(rows)


def violations_by_phase(report):
    counts = {}
    for v in report.get("violations", []):
        counts.setdefault(v["phase"], Counter())[v["kind"]] += 1
    return counts


def fault_table(reports):
    head = "| strategy | " + " | ".join(FAULTS) + " | sessions wrong at the end |"
    rows = [head, "|---|" + "---|" * (len(FAULTS) + 1)]
    for name, r in reports.items():
        viol = violations_by_phase(r)
        cells = []
        for f in FAULTS:
            p = phase(r, f)
            if not p:
                cells.append("–")
                continue
            cell = f"{p['failures']}/{p['requests']} failed"
            kinds = viol.get(f)
            if kinds:
                cell += "; " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            cells.append(cell)
        bad = len(r.get("final_bad", []))
        cells.append(f"{bad} of {r['users']}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cookie_table(run):
    path = run / "cookie-limit.json"
    if not path.exists():
        return ""
    c = json.loads(path.read_text())
    rows = ["| session JSON bytes | cookie bytes |", "|---|---|"]
    rows += [f"| {s['session_bytes']} | {s['cookie_bytes']} |" for s in c["sizes"]]
    return (
        "\n".join(rows)
        + f"\n\nThe largest session that fits the browsers' {c['cookie_limit_bytes']}-byte cookie: "
        + f"{c['largest_session_bytes']} bytes of JSON."
    )


def messages_table(run):
    path = run / "replication-messages.jsonl"
    if not path.exists():
        return ""
    rows = [
        "| propagation | frontends | writes | push messages / write | records / write | anti-entropy messages / write | heartbeats / s (fleet) |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in path.read_text().splitlines():
        m = json.loads(line)
        rows.append(
            f"| {m['propagation']} | {m['frontends']} | {m['writes']:g} | {m['push_messages_per_write']:g} "
            f"| {m['push_records_per_write']:g} | {m['anti_entropy_messages_per_write']:g} | {m['heartbeats_per_second']:g} |"
        )
    return "\n".join(rows)


def plot(reports, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in reports if phase(reports[n], "steady")]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    metrics = [
        ("session_read_p50_ms", "read p50"),
        ("session_read_p99_ms", "read p99"),
        ("session_write_p50_ms", "write p50"),
        ("session_write_p99_ms", "write p99"),
    ]
    width = 0.8 / len(metrics)
    for i, (key, label) in enumerate(metrics):
        values = [phase(reports[n], "steady").get(key) or 0 for n in names]
        ax1.bar([x + i * width for x in range(len(names))], values, width, label=label)
    ax1.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names)
    ax1.set_yscale("symlog", linthresh=0.1)
    ax1.set_ylabel("ms (frontend's Server-Timing)")
    ax1.set_title("session latency, steady state")
    ax1.legend(fontsize=8)

    faults = [f for f in FAULTS if any(phase(reports[n], f) for n in names)]
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        viol = violations_by_phase(reports[n])
        values = []
        for f in faults:
            p = phase(reports[n], f)
            values.append((p["failures"] if p else 0) + sum(viol.get(f, Counter()).values()))
        ax2.bar([x + i * width for x in range(len(faults))], values, width, label=n)
    ax2.set_xticks([x + 0.4 - width / 2 for x in range(len(faults))], faults, rotation=20)
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_ylabel("failed requests + violations")
    ax2.set_title("under faults")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RUN_DIR")
    run = Path(sys.argv[1])
    reports = load(run)
    if not reports:
        sys.exit(f"report.py: no <Strategy>.json in {run}")
    text = "\n\n".join(
        part
        for part in [
            "### Session latency in steady state\n\n" + latency_table(reports),
            "### Under faults (failed requests / requests in the phase; violations seen by the users)\n\n"
            + fault_table(reports),
            "### Client: cookie size\n\n" + cookie_table(run) if cookie_table(run) else "",
            "### Replicated: replication messages per session write\n\n" + messages_table(run)
            if messages_table(run)
            else "",
        ]
        if part
    )
    (run / "report.md").write_text(text + "\n")
    print(text)
    try:
        plot(reports, run / "strategies.png")
        print(f"\nplot: {run / 'strategies.png'}")
    except ImportError:
        print("\nno matplotlib: plot skipped (python3 -m pip install matplotlib==3.11.2)")


if __name__ == "__main__":
    main()
