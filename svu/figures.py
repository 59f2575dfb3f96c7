"""The pictures `svu` commands draw (matplotlib, Agg: no display needed). Small PNGs: few pixels, few colours.

`piano_roll_figure` also records the notes it draws in the PNG's text metadata (key ``svu:notes``, JSON
``[[onset_s, offset_s, midi], ...]``), so a picture can be checked against the MIDI/CSV/JSON of the same run;
`pitch_contour_figure` records the contour it draws (key ``svu:f0``, JSON ``[[time_s, f0_hz], ...]`` of the voiced
frames).
"""

import json
from pathlib import Path

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NOTES_KEY = "svu:notes"
CONTOUR_KEY = "svu:f0"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, metadata=None) -> Path:
    """Save `fig` as a palette PNG (64 colours; a fraction of the RGBA size), with text `metadata`, and close it."""
    import io

    from PIL import Image, PngImagePlugin

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    _pyplot().close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(key, value, zip=True)
    image.save(path, format="PNG", optimize=True, pnginfo=info)
    return Path(path)


def note_name(midi: int) -> str:
    """MIDI 60 -> "C4" (scientific pitch notation)."""
    return f"{NOTE_NAMES[int(midi) % 12]}{int(midi) // 12 - 1}"


def confusion_matrix_figure(confusion: np.ndarray, label_names: list, path: Path, title: str = "") -> Path:
    """Rows = true class, columns = predicted class; colour = fraction of the row, text = count."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.45 * len(label_names)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if fractions[row, column] > 0.6 else "black"
        ax.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    ticks = np.arange(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(ticks, label_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    return save_png(fig, path)


def per_song_figure(per_song: list, metrics: tuple, path: Path, title: str = "", ylabel: str = "F1") -> Path:
    """Grouped bars of `metrics` (up to three) per song, dashed lines at the means over songs."""
    plt = _pyplot()
    songs = [row["song_id"] for row in per_song]
    x = np.arange(len(songs))
    width = 0.27
    fig, ax = plt.subplots(figsize=(min(4.5 + 0.35 * len(songs), 16), 2.8))
    for i, (metric, colour) in enumerate(zip(metrics, ("tab:red", "tab:orange", "tab:blue"))):
        values = [row[metric] for row in per_song]
        label = metric.removesuffix("_f1").removesuffix("_accuracy").replace("_", " ")
        ax.bar(x + (i - 1) * width, values, width, color=colour, label=label)
        ax.axhline(np.mean(values), color=colour, linestyle="--", linewidth=0.8)
    ax.set_xticks(x, songs, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (dashed lines: means over songs)", fontsize=8)
    ax.legend(fontsize=7, ncol=3, loc="upper center", frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def log_spectrogram(audio: np.ndarray, sampling_rate: int, hop: int, midi_grid: np.ndarray, n_fft: int = 4096,
                    block_frames: int = 2048) -> np.ndarray:  # fmt: skip
    """(len(midi_grid), frames) dB magnitudes on a MIDI-pitch frequency axis, computed block by block (memory
    stays at one block of FFTs, not the whole file's)."""
    padded = np.pad(np.asarray(audio, dtype=np.float32), (n_fft // 2, n_fft // 2))
    num_frames = max(1, (len(padded) - n_fft) // hop + 1)
    window = np.hanning(n_fft).astype(np.float32)
    bins = 440.0 * 2 ** ((midi_grid - 69) / 12) * n_fft / sampling_rate  # fractional FFT bin of each pitch
    low = np.clip(np.floor(bins).astype(int), 0, n_fft // 2 - 1)
    frac = np.clip(bins - low, 0.0, 1.0).astype(np.float32)
    columns = []
    for first in range(0, num_frames, block_frames):
        starts = np.arange(first, min(first + block_frames, num_frames)) * hop
        frames = np.stack([padded[s : s + n_fft] for s in starts]) * window
        magnitude = np.abs(np.fft.rfft(frames, axis=1))
        columns.append((magnitude[:, low] * (1 - frac) + magnitude[:, low + 1] * frac).T)
    spectrum = np.concatenate(columns, axis=1)
    return 20 * np.log10(np.maximum(spectrum, 1e-6))


def piano_roll_figure(notes: list, audio: np.ndarray, sampling_rate: int, path: Path, *, lowest_midi: int = 36,
                      num_octaves: int = 4, hop: int = 320, title: str = "") -> Path:  # fmt: skip
    """The notes as boxes over the log-spectrogram, time (s) on x, note names on y."""
    plt = _pyplot()
    low, high = lowest_midi - 0.5, lowest_midi + 12 * num_octaves - 0.5
    midi_grid = np.arange(low + 0.125, high, 0.25)
    spectrogram = log_spectrogram(audio, sampling_rate, hop, midi_grid)
    duration = len(audio) / sampling_rate
    fig, ax = plt.subplots(figsize=(min(3.0 + 0.6 * duration, 14.0), 3.2))
    top = spectrogram.max()
    ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="Greys", vmin=top - 70, vmax=top,
              extent=(0.0, spectrogram.shape[1] * hop / sampling_rate, low, high), interpolation="nearest")  # fmt: skip
    for onset, offset, pitch in notes:
        ax.add_patch(plt.Rectangle((onset, pitch - 0.45), offset - onset, 0.9, facecolor="tab:orange",
                                   edgecolor="tab:red", linewidth=0.6, alpha=0.75))  # fmt: skip
    octaves = [lowest_midi + 12 * i for i in range(num_octaves + 1)]
    ax.set_yticks(octaves, [note_name(m) for m in octaves])
    ax.set_ylim(low, high)
    ax.set_xlim(0.0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("note")
    ax.set_title(title or f"{len(notes)} notes", fontsize=8)
    fig.tight_layout()
    notes_text = json.dumps([[round(float(a), 6), round(float(b), 6), int(p)] for a, b, p in notes])
    return save_png(fig, path, {NOTES_KEY: notes_text})



def pitch_contour_figure(times, f0_hz, voicing, path: Path, *, voicing_threshold: float = 0.5, title: str = "") -> Path:
    """The F0 of the voiced frames (f0 > 0) on a note-name (log-frequency) axis, time (s) on x; below it the voicing
    confidence with the threshold dashed."""
    from svu.modeling_svu.note_pitch import hz_to_midi

    plt = _pyplot()
    times, f0_hz, voicing = (np.asarray(values, dtype=np.float64) for values in (times, f0_hz, voicing))
    voiced = f0_hz > 0
    line = hz_to_midi(f0_hz)  # NaN on unvoiced frames: the line breaks where the voice stops
    midi = line[voiced]
    duration = float(times[-1]) if len(times) else 1.0
    fig, (ax, ax_voicing) = plt.subplots(2, 1, sharex=True, figsize=(min(3.0 + 0.6 * duration, 14.0), 3.6),
                                         gridspec_kw={"height_ratios": (3, 1)})  # fmt: skip
    ax.plot(times, line, color="tab:red", linewidth=1.0)
    low, high = (np.floor(midi.min()) - 2, np.ceil(midi.max()) + 2) if midi.size else (48.0, 72.0)
    ticks = [m for m in range(int(low), int(high) + 1) if m % 12 in (0, 7) or high - low <= 12]
    ax.set_yticks(ticks, [note_name(m) for m in ticks])
    ax.set_ylim(low, high)
    ax.grid(axis="y", linewidth=0.3)
    ax.set_ylabel("F0 (note)")
    ax.set_title(title or f"F0: {int(voiced.sum())} voiced frames", fontsize=8)
    ax_voicing.plot(times, voicing, color="tab:blue", linewidth=0.8)
    ax_voicing.axhline(voicing_threshold, color="black", linestyle="--", linewidth=0.6)
    ax_voicing.set_ylim(0.0, 1.05)
    ax_voicing.set_ylabel("voicing", fontsize=7)
    ax_voicing.set_xlabel("time (s)")
    ax_voicing.set_xlim(0.0, duration)
    fig.tight_layout()
    contour = json.dumps([[round(float(t), 4), round(float(f), 3)] for t, f in zip(times[voiced], f0_hz[voiced])])
    return save_png(fig, path, {CONTOUR_KEY: contour})
