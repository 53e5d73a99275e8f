"""A PNG of each tool's throughput per phase (``run.py --plot FILE``), for doc/BENCHMARKS.md.

matplotlib is the one dependency beyond the standard library, imported only when a plot is
asked for (``pip install matplotlib``).  Throughput is dataset MB / wall s, on a log axis:
a no-change backup runs at tens of GB/s, a first backup at hundreds of MB/s.
"""


def throughput_png(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    phases = [(name, ph) for name, ph in results["phases"].items()
              if any(c.get("status") == "ok" and c.get("mb_s") for c in ph["tools"].values())]
    tools = list(results["tools"])
    width = 0.8 / max(len(tools), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(phases)), 4.5), dpi=110)
    for i, tool in enumerate(tools):
        xs, ys = [], []
        for j, (_, ph) in enumerate(phases):
            c = ph["tools"].get(tool) or {}
            if c.get("status") == "ok" and c.get("mb_s"):
                xs.append(j + (i - (len(tools) - 1) / 2) * width)
                ys.append(c["mb_s"])
        ax.bar(xs, ys, width, label=tool)
    ax.set_yscale("log")
    ax.set_ylabel("MB/s (dataset bytes / wall time, log scale)")
    ax.set_xticks(range(len(phases)), [name for name, _ in phases], rotation=20, ha="right")
    ax.set_title(f"Throughput per phase, {results['size']} dataset, {results['host']['cpus']} CPUs")
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
