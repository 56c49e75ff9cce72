"""What the demo shows: the learning-curve table, its JSON form, and the picture."""
from __future__ import annotations

from graphsurgeon._src.demo.curve import ARMS
from graphsurgeon._src.storage import files

VERSION = 1
LABELS = {"transfer_head": "transfer: new head", "transfer_finetune": "transfer: + fc1 tuned",
          "scratch": "from scratch"}
PLOT_HINT = "none: matplotlib is not installed (pip install matplotlib, or pip install -e '.[plot]' in a clone)"


def table(rows: list[dict], n_seeds: int) -> str:
    """The learning curve as text: one line per k, mean ± standard deviation over seeds."""
    head = f"  {'k/class':>7}  {'images':>6}" + "".join(f"  {LABELS[a]:>21}" for a in ARMS)
    lines = [head]
    for row in rows:
        cells = "".join(f"  {row[a]:>13.3f} ± {row[a + '_std']:.3f}" if a in row else f"  {'-':>21}" for a in ARMS)
        lines.append(f"  {str(row['k']):>7}  {row['train_images']:>6}{cells}")
    lines.append(f"  (test accuracy, mean ± standard deviation over {n_seeds} seed{'s' if n_seeds != 1 else ''})")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """Per k, whether the better transfer way is ahead of from scratch in mean test accuracy, by how
    much, and whether that margin is within the seeds' spread (smaller than the larger of the two
    standard deviations)."""
    ahead, behind = [], []
    for row in rows:
        if all(a in row for a in ARMS):
            best = max(("transfer_head", "transfer_finetune"), key=lambda a: row[a])
            margin = row[best] - row["scratch"]
            within = abs(margin) < max(row[best + "_std"], row["scratch_std"])
            (ahead if margin > 0 else behind).append(f"k={row['k']} by {abs(margin):.2f}"
                                                     + (" (within the spread)" if within else ""))
    lines = []
    if ahead:
        lines.append("transfer ahead of from scratch at " + ", ".join(ahead))
    if behind:
        lines.append("from scratch ahead of transfer at " + ", ".join(behind))
    return lines


def to_json(rows: list[dict], **extra) -> dict:
    """``{"version": 1, "curve": [row, ...], **extra}``; each row holds ``k`` (an int, or ``"all"``),
    ``train_images``, and per arm (``transfer_head``, ``transfer_finetune``, ``scratch``) the mean
    test accuracy, ``<arm>_std`` (sample standard deviation over seeds) and ``<arm>_runs`` (per seed)."""
    return {"version": VERSION, "curve": rows, **extra}


def plot(rows: list[dict], path: str, *, test_images: int, n_seeds: int) -> str | None:
    """Write the learning curve to ``path`` (PNG) if matplotlib is installed; return the path, or
    None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    per_class = [row["train_images"] / 5 for row in rows]
    for arm in ARMS:
        pts = [(x, row[arm], row[f"{arm}_std"]) for x, row in zip(per_class, rows) if arm in row]
        if pts:
            xs, ys, es = zip(*pts)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=LABELS[arm])
    ax.set_xscale("log")
    ax.set_xticks(per_class)
    ax.set_xticklabels([str(row["k"]) if row["k"] != "all" else f"all\n({row['train_images'] / 5:.0f})"
                        for row in rows])
    ax.set_xlabel("labelled images per class (digits 5-9)")
    ax.set_ylabel(f"test accuracy ({test_images} images)")
    ax.axhline(1 / 5, color="grey", linestyle=":", linewidth=1, label="chance (5 classes)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"graphsurgeon demo: mean ± std over {n_seeds} seeds")
    fig.tight_layout()
    files.save_figure(fig, path)
    plt.close(fig)
    return path
