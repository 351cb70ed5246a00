"""The cost-versus-accuracy picture of an eval: one point per profile, as the paper plots its Pareto front.

matplotlib draws it, headless (the Agg backend: no display needed). A profile whose cost is unknown or
that finished nothing has no point; the image says so in its caption rather than inventing one.
"""

from __future__ import annotations

from pathlib import Path

from orchestra_tui.eval.summary import ProfileSummary


def plot_summary(summaries: list[ProfileSummary], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless: an eval runs in terminals and on servers
    import matplotlib.pyplot as plt

    points = [s for s in summaries if s.cost_mean_usd is not None and s.accuracy is not None]
    left_out = [s.profile for s in summaries if s not in points]
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    try:
        for s in points:
            x, y = float(s.cost_mean_usd), 100 * s.accuracy  # type: ignore[arg-type,operator]
            axes.scatter([x], [y], s=60)
            axes.annotate(s.profile, (x, y), textcoords="offset points", xytext=(6, 6))
        axes.set_xlabel("mean cost per question (USD)")
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(-5, 105)
        axes.set_xlim(left=0)  # cost starts at nothing: distances between profiles read true
        axes.grid(True, alpha=0.3)
        axes.set_title("accuracy vs cost per profile")
        if left_out:
            figure.text(0.01, 0.01, f"no point (cost unknown or nothing finished): {', '.join(left_out)}",
                        fontsize=8)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
