"""Plots the lessons share, so each lesson's cells stay about the idea, not matplotlib."""
import pathlib
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np

FIGURE_DPI = 80  # small stored images keep the notebooks light


def curves_and_slopes(x: np.ndarray, values: dict[str, np.ndarray], slopes: dict[str, np.ndarray],
                      title: str = ""):
    """Two panels side by side: functions on the left, their derivatives on the right."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=FIGURE_DPI)
    for name, y in values.items():
        left.plot(x, y, label=name)
    for name, dy in slopes.items():
        right.plot(x, dy, label=name)
    left.set(title="activation φ(x)", xlabel="x")
    right.set(title="derivative φ′(x)", xlabel="x")
    for ax in (left, right):
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def decision_surface(predict: Callable[[np.ndarray], np.ndarray], points: np.ndarray | None = None,
                     labels: np.ndarray | None = None, extent: float = 3.0, title: str = ""):
    """Shade a model's output over the plane and draw its 0.5 contour (the decision boundary).

    ``predict`` maps an ``[n, 2]`` array of points to ``n`` outputs in [0, 1]. ``points`` are
    drawn as dots coloured by ``labels`` (0 blue, 1 red); with labels, every point the model
    gets wrong (output on the wrong side of 0.5) is ringed in black and counted in the legend.
    """
    grid = np.linspace(-extent, extent, 201)
    xx, yy = np.meshgrid(grid, grid)
    zz = np.asarray(predict(np.stack([xx.ravel(), yy.ravel()], axis=1))).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=FIGURE_DPI)
    shade = ax.contourf(xx, yy, zz, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
    ax.contour(xx, yy, zz, levels=[0.5], colors="black", linewidths=1.5)
    if points is not None:
        points = np.asarray(points)
        if labels is None:
            ax.scatter(points[:, 0], points[:, 1], c="white", edgecolors="black", s=18)
        else:
            is_one = np.ravel(np.asarray(labels)) > 0.5
            for mask, colour, name in [(~is_one, "tab:blue", "label 0"), (is_one, "tab:red", "label 1")]:
                ax.scatter(points[mask, 0], points[mask, 1], c=colour, edgecolors="white", linewidths=0.6,
                           s=20, label=name)
            wrong = (np.ravel(np.asarray(predict(points))) > 0.5) != is_one
            ax.scatter(points[wrong, 0], points[wrong, 1], facecolors="none", edgecolors="black",
                       linewidths=1.4, s=70, label=f"misclassified ({wrong.sum()} of {len(wrong)})")
            ax.legend(loc="upper left", fontsize=7, framealpha=0.85)
    fig.colorbar(shade, ax=ax, label="output")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")
    fig.tight_layout()
    plt.show()


def accuracy_by_condition(labels: list, accuracy: list[float], chance: float, xlabel: str, title: str = ""):
    """Bars of accuracy per condition (e.g. per distance), with a dashed line at chance level."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=FIGURE_DPI)
    ax.bar([str(label) for label in labels], accuracy, color="tab:blue")
    ax.axhline(chance, color="gray", ls="--", label=f"chance ({chance:g})")
    ax.set(ylim=(0, 1.05), xlabel=xlabel, ylabel="accuracy", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.show()


def trace_over_tokens(tokens: list[str], values: np.ndarray, ylabel: str, title: str = ""):
    """One number per token of a sentence, as bars above (red) or below (blue) zero, with
    the tokens as tick labels: e.g. what a model believes after reading each word."""
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(tokens)), 3.2), dpi=FIGURE_DPI)
    values = np.asarray(values)
    ax.bar(range(len(tokens)), values, color=np.where(values >= 0, "tab:red", "tab:blue"))
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right")
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    plt.show()


def gradient_vs_lag(norms: dict[str, np.ndarray], title: str = ""):
    """How far back a gradient reaches: one curve per setting, ``norms[name][k]`` being the
    gradient's size k steps back. A log scale turns geometric decay or growth into a line."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=FIGURE_DPI)
    for name, values in norms.items():
        ax.semilogy(np.arange(len(values)), values, label=name)
    ax.set(xlabel="time lag k (steps between input and output)", ylabel="gradient norm (log scale)",
           title=title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.show()


def lines_over_time(panels: dict[str, np.ndarray], xlabel: str = "step", ylabel: str = "", title: str = ""):
    """One panel per entry, each drawing the columns of a ``[time, k]`` array as lines: e.g.
    a memory cell holding several starting values, side by side for two designs."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.2), dpi=FIGURE_DPI, sharey=True)
    for ax, (name, values) in zip(np.atleast_1d(axes), panels.items()):
        ax.plot(np.asarray(values))
        ax.axhline(0, color="gray", lw=0.5)
        ax.set(title=name, xlabel=xlabel)
    np.atleast_1d(axes)[0].set_ylabel(ylabel)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def learning_curves(histories: dict[str, list[float]], baseline: float | None = None,
                    baseline_label: str = "baseline", ylabel: str = "loss", title: str = ""):
    """Loss per epoch for several models on one figure, with an optional dashed baseline
    (e.g. the error of a trivial constant answer)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=FIGURE_DPI)
    for name, values in histories.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label=baseline_label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title, ylim=(0, None))
    ax.legend()
    fig.tight_layout()
    plt.show()


def gate_heatmaps(traces: dict[str, np.ndarray], marks: list[int] | None = None, title: str = ""):
    """Stacked heatmaps, one per gate (or state), each ``[time, units]``, with time running
    left to right and the marked steps framed in red; gates share the colour range [0, 1]."""
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 1.6 * len(traces) + 0.6), dpi=FIGURE_DPI,
                             sharex=True)
    for ax, (name, values) in zip(np.atleast_1d(axes), traces.items()):
        values = np.asarray(values).T
        is_gate = values.min() >= 0 and values.max() <= 1
        limit = 1.0 if is_gate else np.abs(values).max()
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis" if is_gate else "RdBu_r",
                          vmin=0 if is_gate else -limit, vmax=limit)
        for step in marks or []:  # frame the marked columns without covering them
            for edge in (step - 0.5, step + 0.5):
                ax.axvline(edge, color="red", lw=0.8)
        ax.set_ylabel(f"{name}\nunit")
        fig.colorbar(image, ax=ax, pad=0.01)
    np.atleast_1d(axes)[-1].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def history_panels(history: dict[str, list[float]], best_epoch: int | None = None, xlabel: str = "epoch",
                   title: str = ""):
    """One panel per quantity of a Keras-style history (``model.fit(...).history``): loss,
    accuracy, …, with the training curve solid and its ``val_`` twin dashed, and an optional
    dotted line at ``best_epoch`` (0-based, e.g. the one early stopping kept)."""
    names = sorted(dict.fromkeys(key.removeprefix("val_") for key in history), key=lambda name: name != "loss")
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 3.4), dpi=FIGURE_DPI, squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label, style in [(name, "training", "-"), ("val_" + name, "validation", "--")]:
            if key in history:
                ax.plot(np.arange(1, len(history[key]) + 1), history[key], style, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="gray", ls=":", label=f"kept ({xlabel} {best_epoch + 1})")
        ax.set(xlabel=xlabel, ylabel=name, title=name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def attention_heads(weights: np.ndarray, keys: list[str], queries: list[str], title: str = ""):
    """Attention weights as heatmaps, one panel per head: ``weights[h, i, j]`` is how much
    query ``i`` (a row, labelled by ``queries``) looks at key ``j`` (a column, labelled by
    ``keys``). Every row sums to 1, so all panels share the colour range [0, 1]."""
    weights = np.asarray(weights)
    heads = weights.shape[0]
    width = max(3.0, 0.32 * len(keys) + 1.2)
    fig, axes = plt.subplots(1, heads, figsize=(width * heads, 0.32 * len(queries) + 1.8), dpi=FIGURE_DPI,
                             squeeze=False)
    for h, ax in enumerate(axes[0]):
        image = ax.imshow(weights[h], vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(keys)), keys, rotation=90)
        ax.set_yticks(range(len(queries)), queries if h == 0 else [""] * len(queries))
        ax.set_title(f"head {h + 1}")
    axes[0][0].set_ylabel("query")
    fig.colorbar(image, ax=axes[0].tolist(), label="attention weight", fraction=0.03)
    fig.suptitle(title)
    plt.show()


def value_by_position(values: dict[str, np.ndarray], ylabel: str, xlabel: str = "position", title: str = ""):
    """One line per entry, ``values[name][t]`` being a quantity measured at position ``t``
    (e.g. the mean loss of a language model at each position of its input segment)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=FIGURE_DPI)
    for name, curve in values.items():
        ax.plot(np.arange(len(curve)), curve, marker="o", ms=3, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.3)
    if len(values) > 1:
        ax.legend()
    fig.tight_layout()
    plt.show()


def accuracy_by_length(buckets: list[str], accuracy: dict[str, list[float]], counts: list[int] | None = None,
                       ylabel: str = "exact-match accuracy", title: str = ""):
    """Accuracy of one or more models per input-length bucket, one line each, so a model
    that degrades on long inputs shows as a falling line; ``counts`` (examples per bucket)
    go under the tick labels."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=FIGURE_DPI)
    positions = np.arange(len(buckets))
    for name, values in accuracy.items():
        ax.plot(positions, values, marker="o", label=name)
    labels = buckets if counts is None else [f"{b}\n({n})" for b, n in zip(buckets, counts)]
    ax.set_xticks(positions, labels)
    ax.set(xlabel="input length in characters (examples)", ylabel=ylabel, ylim=(0, 1.05), title=title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.show()


def curves_by_distance(curves: dict[str, np.ndarray], mark: int | None = None, ylabel: str = "score",
                       title: str = ""):
    """Scores against relative distance 0, 1, 2, … (one line per entry), with an optional
    dotted line at the distance a task depends on."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2), dpi=FIGURE_DPI)
    for name, values in curves.items():
        ax.plot(np.arange(len(values)), values, marker="o", ms=3, label=name)
    if mark is not None:
        ax.axvline(mark, color="gray", ls=":", label=f"distance {mark}")
    ax.set(xlabel="relative distance i − j", ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    plt.show()


def accuracy_over_seeds(x: list, accuracy: dict[str, np.ndarray], chance: float, xlabel: str,
                        title: str = "", baselines: dict[str, float] | None = None, ylabel: str = "accuracy",
                        limits: dict[str, float] | None = None, log_x: bool = False):
    """A score against a condition for several models, each trained on several seeds.

    ``accuracy[name]`` is ``[seeds, len(x)]``: the line is the mean over seeds and the shaded
    band runs from the worst seed to the best, so a single lucky run cannot pass for a trend.
    ``baselines`` draws labelled references: a number is a horizontal level, a sequence of
    ``len(x)`` numbers a rule's score at each condition (a black line without a band, since a
    rule has no seeds). ``limits`` draws labelled vertical lines (how far each memory can reach,
    say); ``log_x`` spaces sizes such as label counts evenly.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=FIGURE_DPI)
    for name, values in accuracy.items():
        values = np.atleast_2d(values)
        line, = ax.plot(x, values.mean(axis=0), marker="o", label=f"{name} (mean of {len(values)} seeds)")
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.axhline(chance, color="gray", ls="--", label=f"chance ({chance:g})")
    for (name, level), style in zip((baselines or {}).items(), [":", "-."]):
        if np.ndim(level) == 0:
            ax.axhline(level, color="black", ls=style, lw=1, label=f"{name} ({level:g})")
        else:
            ax.plot(x, level, color="black", ls=style, lw=1, marker="x", label=name)
    for (name, where), color in zip((limits or {}).items(), ["black", "tab:purple", "tab:brown"]):
        ax.axvline(where, color=color, ls=":", label=name)
    if log_x:
        ax.set_xscale("log")
        ax.set_xticks(x, [str(value) for value in x])
        ax.minorticks_off()
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(-0.03, 1.05), title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    plt.show()

DIAGRAMS = pathlib.Path(__file__).parent / "diagrams"


def diagram(name: str):
    """Show the architecture drawing ``utils/diagrams/<name>.svg``.

    The drawings live inside the package, so a lesson shows them from any folder, in
    Jupyter and in Colab alike, with no path to get right.
    """
    from IPython.display import SVG

    path = DIAGRAMS / f"{name}.svg"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in DIAGRAMS.glob("*.svg"))) or "none"
        raise FileNotFoundError(f"no diagram {name!r} in {DIAGRAMS}; known diagrams: {known}")
    return SVG(filename=str(path))


def attention_heatmap(weights: np.ndarray, inputs: list[str], outputs: list[str], title: str = ""):
    """One heatmap of attention weights ``[output steps, input steps]``, sized to its rows and
    columns so that every token keeps a readable label however long the output (a list of
    dates has 30 and more). Row t shows where the decoder looked while writing output token t;
    spaces are drawn as "␣"."""
    fig, ax = plt.subplots(dpi=FIGURE_DPI, figsize=(0.2 * len(inputs) + 2.2, 0.16 * len(outputs) + 1.3))
    image = ax.imshow(np.asarray(weights), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(inputs)), ["␣" if c == " " else c for c in inputs], fontsize=8)
    ax.set_yticks(range(len(outputs)), ["␣" if c == " " else c for c in outputs], fontsize=8)
    ax.set(xlabel="input character", ylabel="output")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, pad=0.01, label="weight")
    fig.tight_layout()
    plt.show()


def shared_scale_heatmaps(panels: dict[str, np.ndarray], boundary: float | None = None,
                          boundary_label: str = "", xlabel: str = "key j", ylabel: str = "query i",
                          title: str = "", annotate: bool = False):
    """Side-by-side heatmaps on ONE colour scale (one colour bar), so that panels of very
    different size look different: a term of ±0.1 stays pale next to one of ±100. NaN cells
    are left blank; ``boundary`` draws a dashed vertical line between two columns (e.g. where a
    Transformer-XL memory ends and the segment begins), named in the x label by
    ``boundary_label``; ``annotate`` writes small integer values into the cells."""
    limit = max(np.nanmax(np.abs(np.asarray(values, dtype=float))) for values in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels) + 0.8, 3.3), dpi=FIGURE_DPI,
                             layout="constrained")
    for ax, (name, values) in zip(np.atleast_1d(axes), panels.items()):
        values = np.asarray(values, dtype=float)
        image = ax.imshow(values, cmap="RdBu_r", interpolation="nearest", vmin=-limit, vmax=limit, aspect="auto")
        if annotate:
            for (i, j), value in np.ndenumerate(values):
                if not np.isnan(value):
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8)
        if boundary is not None:
            ax.axvline(boundary, color="black", lw=1.5, ls="--")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set(title=name, xlabel=f"{xlabel}  (- - {boundary_label})" if boundary_label else xlabel)
    np.atleast_1d(axes)[0].set_ylabel(ylabel)
    fig.colorbar(image, ax=list(np.atleast_1d(axes)), shrink=0.8, label="one scale for all panels")
    fig.suptitle(title)
    plt.show()


def loss_with_levels(histories: dict[str, list[float]], levels: dict[str, float], xlabel: str = "training step",
                     ylabel: str = "loss", title: str = ""):
    """Training loss against step for several models, with a dashed horizontal line per entry
    of ``levels`` (e.g. guessing, and the lowest loss any model can reach on the data)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=FIGURE_DPI)
    for name, values in histories.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    for (name, level), style in zip(levels.items(), ["--", ":", "-."]):
        ax.axhline(level, color="gray", ls=style, label=f"{name} ({level:.2f})")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0, None))
    ax.legend(fontsize="small")
    fig.tight_layout()
    plt.show()


def accuracy_bars_over_seeds(conditions: list[str], accuracy: dict[str, np.ndarray], chance: float,
                             title: str = ""):
    """Grouped bars: one group per condition, one bar per model, each the mean over seeds
    with a line from the worst seed to the best. ``accuracy[name]`` is ``[seeds, len(conditions)]``."""
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=FIGURE_DPI)
    width = 0.8 / len(accuracy)
    for n, (name, values) in enumerate(accuracy.items()):
        values = np.atleast_2d(values)
        x = np.arange(len(conditions)) + (n - (len(accuracy) - 1) / 2) * width
        mean = values.mean(axis=0)
        ax.bar(x, mean, width, label=f"{name}")
        ax.errorbar(x, mean, yerr=[mean - values.min(axis=0), values.max(axis=0) - mean], fmt="none",
                    ecolor="black", capsize=3, lw=1)
    ax.axhline(chance, color="gray", ls="--", label=f"chance ({chance:g})")
    ax.set_xticks(np.arange(len(conditions)), conditions)
    ax.set(ylabel="accuracy", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    plt.show()


def curves_with_seed_range(curves: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str,
                           title: str = "", baselines: dict[str, float] | None = None, log_x: bool = False,
                           ylim: tuple[float | None, float | None] | None = None,
                           styles: dict[str, str] | None = None, window: int = 1):
    """Several curves, each measured on several seeds and each on its own x values: a
    learning-rate sweep per optimizer, or a loss per epoch per setting.

    ``curves[name]`` is ``(x, values)`` with ``values`` of shape ``[seeds, len(x)]``: the line is
    the mean over seeds and the shaded band runs from the worst seed to the best. ``baselines``
    draws labelled horizontal levels (chance, the best straight line); ``styles`` gives a line
    style per name (e.g. "--" for validation curves). ``window`` > 1 first averages each seed's
    curve over that many consecutive points (a running mean, plotted at the window's end), for
    curves that jump from step to step.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=FIGURE_DPI)
    for name, (x, values) in curves.items():
        values = np.atleast_2d(values)
        x = np.asarray(x)
        if window > 1:
            kernel = np.ones(window) / window
            values = np.stack([np.convolve(row, kernel, mode="valid") for row in values])
            x = x[window - 1:]
        marker = "o" if len(x) <= 12 else None
        line, = ax.plot(x, values.mean(axis=0), (styles or {}).get(name, "-"), marker=marker,
                        label=f"{name} (mean of {len(values)} seeds)")
        ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
    for (name, level), style in zip((baselines or {}).items(), ["--", ":", "-."]):
        ax.axhline(level, color="gray", ls=style, lw=1, label=f"{name} ({level:.3g})")
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize="small")
    fig.tight_layout()
    plt.show()


def layered_network(sizes: list[int], labels: list[str], title: str = ""):
    """Draw a small fully connected network: one column of units per layer (``sizes``), each
    unit joined to every unit of the next layer, and ``labels`` naming the layers below."""
    fig, ax = plt.subplots(figsize=(1.9 * len(sizes) + 1, 2.9), dpi=FIGURE_DPI)
    tallest = max(sizes)
    columns = [np.linspace(-(n - 1) / 2, (n - 1) / 2, n) * min(1.0, 6 / tallest) for n in sizes]
    for k in range(len(sizes) - 1):
        for y0 in columns[k]:
            for y1 in columns[k + 1]:
                ax.plot([k, k + 1], [y0, y1], color="#999999", lw=0.8, zorder=1)
    for k, ys in enumerate(columns):
        ax.scatter(np.full(len(ys), k), ys, s=260, color="#e8f0fb", edgecolors="#3465a4", linewidths=1.5, zorder=2)
    low = min(ys.min() for ys in columns) - 0.9
    for k, label in enumerate(labels):
        ax.text(k, low, label, ha="center", va="top", fontsize=10)
    ax.set(xlim=(-0.6, len(sizes) - 0.4), ylim=(low - 0.9, max(ys.max() for ys in columns) + 0.6), title=title)
    ax.axis("off")
    fig.tight_layout()
    plt.show()


def curves_over_seeds(panels: dict[str, dict[str, np.ndarray]], chance: float | None = None,
                      xlabel: str = "epoch", ylabel: str = "validation accuracy", title: str = ""):
    """Learning curves of several models trained on several seeds, one panel per setting.

    ``panels[setting][name]`` is ``[seeds, epochs]``: the line is the mean over seeds and the
    shaded band runs from the worst seed to the best, so a model that learns on some seeds and
    not on others shows as a wide band. Every panel shares one y axis, with chance dashed. A
    model keeps its colour in every panel, also where it is missing from one, and one legend
    names them all.
    """
    names = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    colours = {name: f"C{index}" for index, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.4), dpi=FIGURE_DPI, sharey=True,
                             squeeze=False)
    for ax, (setting, curves) in zip(axes[0], panels.items()):
        for name, values in curves.items():
            values = np.atleast_2d(values)
            epochs = np.arange(1, values.shape[1] + 1)
            ax.plot(epochs, values.mean(axis=0), marker="o", ms=3, color=colours[name])
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=colours[name], alpha=0.2)
        if chance is not None:
            ax.axhline(chance, color="gray", ls="--")
        ax.set(title=setting, xlabel=xlabel, ylim=(-0.03, 1.05))
    axes[0][0].set_ylabel(ylabel)
    legend = [plt.Line2D([], [], color=colours[name], marker="o", ms=3, label=name) for name in names]
    if chance is not None:
        legend.append(plt.Line2D([], [], color="gray", ls="--", label=f"chance ({chance:g})"))
    axes[0][-1].legend(handles=legend, fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()
