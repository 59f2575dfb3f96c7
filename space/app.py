"""SVU demo Space: sing (upload or record) and see what an SVU model hears.

    python space/app.py --model user/svu-technique-model          # or a local repo folder
    svu space --model outputs/demo-technique/repo                 # the same, from the svu CLI

The view follows the pipeline the repo runs with (`VIEWS`, read from its config.json; each SVU task names its
pipeline in `modeling_svu/tasks.py`): classification models (singer ID, technique; native or remote-code export) show the top-k classes as a bar chart; transcription models show the
notes as a piano roll over the spectrogram, the notes table, a MIDI file to download and a synthesised preview;
pitch models show the F0 contour over the spectrogram and its times / F0 / voicing as a table and a CSV file.
On a Hub Space, set the model with the `SVU_MODEL` variable.
Needs only gradio, transformers, torch, numpy, matplotlib and mido (requirements.txt); ffmpeg decodes the audio.
"""

import argparse
import csv
import json
import os
import tempfile

import gradio as gr
import matplotlib
import numpy as np
from transformers import pipeline
from transformers.pipelines.audio_utils import ffmpeg_read
from transformers.utils import cached_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SAMPLING_RATE = 16000  # of the synthesised preview
NATIVE_PIPELINE = "audio-classification"  # a native export is a transformers *ForSequenceClassification
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def read_config(model: str) -> dict:
    with open(cached_file(model, "config.json")) as file:
        return json.load(file)


def model_task(config: dict):
    """The SVU task of a repo's config: `task` in SVU's own config, `svu.task` in a native export."""
    return config.get("task") or (config.get("svu") or {}).get("task")


def pipeline_name(config: dict) -> str:
    """The pipeline a repo runs with: the one an SVU config saved with the model (its task's), else transformers'
    own for a native export."""
    return next(iter(config.get("custom_pipelines") or {}), NATIVE_PIPELINE)


def load_model(model: str):
    """(task, pipeline) of an SVU repo id or folder; ValueError (one line) for a model of no SVU task, or one
    running a pipeline the Space has no view for (`VIEWS`)."""
    config = read_config(model)
    task, name = model_task(config), pipeline_name(config)
    if task is None:
        raise ValueError("config.json names no SVU task: not an SVU model")
    if name not in VIEWS:
        raise ValueError(f"config.json's {task!r} model runs pipeline {name!r}, not one of this Space's {tuple(VIEWS)}")
    # a native export is transformers' own class: no remote code, even when its auto_map also names SVU's class
    return task, pipeline(name, model=model, trust_remote_code=config.get("model_type") == "svu")


def read_audio(path: str, pipe) -> tuple:
    """(samples, rate): the file decoded at the rate of `pipe`'s model (an array is taken to be at that rate)."""
    if not path:
        raise gr.Error("Upload or record some singing first.")
    rate = pipe.feature_extractor.sampling_rate
    with open(path, "rb") as file:
        return ffmpeg_read(file.read(), rate), rate


def note_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def figure_png(fig) -> str:
    path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
    fig.savefig(path)
    plt.close(fig)
    return path


def bar_chart(predictions) -> str:
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(predictions)), dpi=100)
    labels = [p["label"] for p in predictions][::-1]
    ax.barh(labels, [p["score"] for p in predictions][::-1], color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    fig.tight_layout()
    return figure_png(fig)


def spectrogram(audio: np.ndarray, rate: int):
    """(figure, axes) of the audio's log-frequency spectrogram, time (s) on x, for a view to draw on."""
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    ax.specgram(audio + 1e-9, NFFT=1024, Fs=rate, noverlap=768, cmap="magma")
    ax.set_yscale("log")
    ax.set_ylim(50, 4000)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    return fig, ax


def piano_roll(audio: np.ndarray, rate: int, notes) -> str:
    """The notes as boxes at their pitch's frequency over a log-frequency spectrogram."""
    fig, ax = spectrogram(audio, rate)
    for note in notes:
        low, high = (440.0 * 2 ** ((note["pitch"] + d - 69) / 12) for d in (-0.5, 0.5))
        ax.add_patch(plt.Rectangle((note["onset"], low), note["offset"] - note["onset"], high - low,
                                   facecolor="#7fdbff", edgecolor="white", alpha=0.8))
    ax.set_title(f"{len(notes)} notes")
    fig.tight_layout()
    return figure_png(fig)


def synthesise(notes, seconds: float) -> np.ndarray:
    """A sine tone per note with short fades: a preview of what was transcribed."""
    out = np.zeros(int(seconds * SAMPLING_RATE) + 1, dtype=np.float32)  # in [-1, 1]: clipped below
    for note in notes:
        start, stop = int(note["onset"] * SAMPLING_RATE), int(note["offset"] * SAMPLING_RATE)
        t = np.arange(stop - start) / SAMPLING_RATE
        tone = 0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((note["pitch"] - 69) / 12) * t)
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01) if len(t) else t
        out[start:stop] += (tone * fade)[: len(out) - start]
    return np.clip(out, -1.0, 1.0)


def pitch_contour(audio: np.ndarray, rate: int, track) -> str:
    """The F0 of the voiced frames as a line over a log-frequency spectrogram (broken where the voice stops)."""
    fig, ax = spectrogram(audio, rate)
    voiced = np.asarray(track["voiced"], dtype=bool)
    ax.plot(track["times"], np.where(voiced, track["f0_hz"], np.nan), color="#7fdbff", linewidth=2)
    ax.set_title(f"F0: {int(voiced.sum())} voiced frames of {len(voiced)}")
    fig.tight_layout()
    return figure_png(fig)


def pitch_rows(track) -> list:
    return [[round(t, 3), round(f0, 3), round(v, 4), bool(voiced)]
            for t, f0, v, voiced in zip(track["times"], track["f0_hz"], track["voicing"], track["voiced"])]


def write_csv(header, rows, name: str) -> str:
    path = os.path.join(tempfile.mkdtemp(), name)
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def run_button():
    return gr.Button("Run", variant="primary", elem_id="run")


def classification_view(pipe, audio):
    """Top-k slider; the predicted classes as a label and a bar chart."""
    def classify(path, top_k):
        predictions = pipe(read_audio(path, pipe)[0], top_k=int(top_k))
        return {p["label"]: p["score"] for p in predictions}, bar_chart(predictions)

    top_k = gr.Slider(1, 10, value=3, step=1, label="top k")
    run = run_button()
    label = gr.Label(label="Prediction", elem_id="label")
    chart = gr.Image(label="Top-k probabilities", type="filepath", elem_id="chart")
    run.click(classify, [audio, top_k], [label, chart])


def transcription_view(pipe, audio):
    """Onset / silence thresholds; the notes as a piano roll, a table, a MIDI file and a synthesised preview."""
    def transcribe(path, onset_threshold, silence_threshold):
        samples, rate = read_audio(path, pipe)
        result = pipe(samples, return_midi=True, onset_threshold=onset_threshold, silence_threshold=silence_threshold)
        notes = result["notes"]
        midi_path = os.path.join(tempfile.mkdtemp(), "transcription.mid")
        with open(midi_path, "wb") as file:
            file.write(result["midi"])
        table = [[n["onset"], n["offset"], n["pitch"], note_name(n["pitch"])] for n in notes]
        preview = (SAMPLING_RATE, (synthesise(notes, len(samples) / rate) * 32767).astype(np.int16))
        return piano_roll(samples, rate, notes), table, midi_path, preview

    with gr.Row():
        onset = gr.Slider(0.05, 0.95, value=pipe.model.config.onset_threshold, label="onset threshold")
        silence = gr.Slider(0.05, 0.95, value=pipe.model.config.silence_threshold, label="silence threshold")
    run = run_button()
    roll = gr.Image(label="Piano roll over the spectrogram", type="filepath", elem_id="piano-roll")
    table = gr.Dataframe(headers=["onset (s)", "offset (s)", "MIDI pitch", "note"], label="Notes", elem_id="notes")
    midi = gr.File(label="MIDI", elem_id="midi")
    preview = gr.Audio(label="Synthesised preview", elem_id="preview")
    run.click(transcribe, [audio, onset, silence], [roll, table, midi, preview])


PITCH_HEADER = ["time (s)", "F0 (Hz)", "voicing", "voiced"]


def pitch_view(pipe, audio):
    """Voicing threshold; the F0 contour over the spectrogram, and times / F0 / voicing as a table and a CSV file."""
    def track_pitch(path, voicing_threshold):
        samples, rate = read_audio(path, pipe)
        track = pipe(samples, voicing_threshold=voicing_threshold)
        rows = pitch_rows(track)
        return pitch_contour(samples, rate, track), rows, write_csv(PITCH_HEADER, rows, "pitch.csv")

    threshold = gr.Slider(0.05, 0.95, value=pipe.model.config.voicing_threshold, label="voicing threshold")
    run = run_button()
    contour = gr.Image(label="F0 contour over the spectrogram", type="filepath", elem_id="pitch-contour")
    table = gr.Dataframe(headers=PITCH_HEADER, label="F0 per frame", elem_id="pitch-table")
    download = gr.File(label="CSV", elem_id="pitch-csv")
    run.click(track_pitch, [audio, threshold], [contour, table, download])


LYRICS_HEADER = ["word", "start (s)", "end (s)"]


def lyrics_view(pipe, audio):
    """Greedy or beam decoding; the lyrics as text and the words with their times as a table and a CSV file."""
    def transcribe_lyrics(path, decoder):
        samples, _ = read_audio(path, pipe)
        result = pipe(samples, return_timestamps="word", decoder=decoder)
        rows = [[chunk["text"], *chunk["timestamp"]] for chunk in result["chunks"]]
        return result["text"], rows, write_csv(LYRICS_HEADER, rows, "lyrics.csv")

    decoder = gr.Radio(["greedy", "beam"], value="greedy", label="decoder")
    run = run_button()
    text = gr.Textbox(label="Lyrics", elem_id="lyrics-text")
    table = gr.Dataframe(headers=LYRICS_HEADER, label="Words with their times", elem_id="lyrics-words")
    download = gr.File(label="CSV", elem_id="lyrics-csv")
    run.click(transcribe_lyrics, [audio, decoder], [text, table, download])


# the view of each pipeline an SVU task runs with (its `pipeline` in modeling_svu/tasks.py, recorded in a saved
# repo's config.json; the Space cannot read the registry: it runs without SVU installed)
VIEWS = {
    "audio-classification": classification_view,
    "singing-transcription": transcription_view,
    "singing-pitch": pitch_view,
    "automatic-speech-recognition": lyrics_view,
}


def build_app(model: str):
    task, pipe = load_model(model)
    with gr.Blocks(title="SVU: singing voice understanding") as app:
        gr.Markdown(f"# SVU: singing voice understanding\nModel: `{model}` ({task}). Upload or record singing, then Run.")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Singing", elem_id="audio-input")
        VIEWS[pipe.task](pipe, audio)
    return app


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("SVU_MODEL"), help="SVU repo id or folder (env SVU_MODEL)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("give --model (an SVU repo id or folder) or set SVU_MODEL")
    if args.model.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(args.model)):
        raise SystemExit(f"svu space: no such model folder: {args.model!r} (give a folder or a Hub repo id)")
    try:
        app = build_app(args.model)
    except (OSError, ValueError) as error:  # no such folder/repo, not an SVU model: one line
        raise SystemExit(f"svu space: cannot load {args.model!r}: {str(error).splitlines()[0]}") from None
    app.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
