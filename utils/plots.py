"""Plots the lessons share, so each lesson's cells stay about the idea, not matplotlib."""
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

    ``predict`` maps an ``[n, 2]`` array of points to ``n`` outputs in [0, 1].
    """
    grid = np.linspace(-extent, extent, 201)
    xx, yy = np.meshgrid(grid, grid)
    zz = np.asarray(predict(np.stack([xx.ravel(), yy.ravel()], axis=1))).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=FIGURE_DPI)
    shade = ax.contourf(xx, yy, zz, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
    ax.contour(xx, yy, zz, levels=[0.5], colors="black", linewidths=1.5)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="RdBu_r", edgecolors="black", s=18)
    fig.colorbar(shade, ax=ax, label="output")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")
    fig.tight_layout()
    plt.show()
