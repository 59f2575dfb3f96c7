"""A bar plot of the learnt (softmax) layer weights: which backbone layers the task uses."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_layer_weights(layer_weights, path, title="Learnt layer weights") -> Path:
    """Write a PNG: x = hidden state (0 = CNN projection, i = transformer layer i), y = weight."""
    path = Path(path)
    weights = list(layer_weights)
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.bar(range(len(weights)), weights, color="#4c72b0")
    ax.axhline(1.0 / len(weights), color="gray", linestyle="--", linewidth=1, label="uniform")
    ax.set_xticks(range(len(weights)))
    ax.set_xlabel("hidden state (0 = CNN projection)")
    ax.set_ylabel("softmax weight")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
