"""`svu lyrics in.wav [more ...] --model <repo id or folder> -o out_dir [--format txt|json|srt|lrc ...] [options]`.

Writes, per input, files named after it in out_dir (the same words in every one):
    <stem>.lyrics.txt   (--format txt, the default) the lyrics, one line per sung line
    <stem>.lyrics.json  (--format json) ``{"file", "model", "decoder", "text", "words": [{"word", "start", "end"}],
                        "lines": [{"start", "end", "text"}]}``, times in seconds
    <stem>.lyrics.srt   (--format srt) subtitles, one cue per line
    <stem>.lyrics.lrc   (--format lrc) karaoke lyrics: ``[mm:ss.xx]`` per line, ``<mm:ss.xx>`` before each word
`--format` can be repeated. Words and their times come from the CTC alignment (`modeling_svu.ctc`); a new line
starts after a pause of more than `--line-gap` seconds (default 0.6) or after `--line-words` words (default 12).
`--decoder beam` decodes with pyctcdecode (`--beam-width`, `--lm` a kenlm n-gram model when kenlm is installed).
Audio is read streamed and run in overlapping windows as `svu transcribe` does (`modeling_svu.long_audio`). A file
that cannot be read is reported on one line; the other files are still processed and the exit status is 1.
"""

import json
import re
from pathlib import Path

from .catalogue import MANIFEST, Done, add_catalogue_options, collect_inputs, outputs_complete, run_catalogue, temporary
from .common import (
    add_device_option, add_engine_options, add_quiet_option, add_window_options, load_model_and_engine,
    open_model_audio, window_options,
)

FORMATS = ("txt", "json", "srt", "lrc")


def lyrics_file(model, path, decoder="greedy", beam_width=32, lm_path=None, **window_options) -> dict:
    """``{"text", "words", "duration"}`` of an audio file (any format FFmpeg reads), streamed."""
    from svu.modeling_svu import ctc
    from svu.modeling_svu.long_audio import lyrics_logits

    total, blocks = open_model_audio(model, path)
    logits = lyrics_logits(model, blocks, total_samples=total, **window_options)
    decoded = ctc.decode(logits, model.config.ctc_vocab, decoder, beam_width, lm_path)
    words = ctc.word_timings(decoded["tokens"], model.config.frame_seconds)
    seconds = total / model.config.sampling_rate if total else len(logits) * model.config.frame_seconds
    return {"text": decoded["text"], "words": words, "duration": seconds}


def lyric_lines(words: list, max_gap: float = 0.6, max_words: int = 12) -> list:
    """`[{"start", "end", "text", "words"}]`: words grouped into lines at pauses longer than `max_gap` seconds or
    every `max_words` words."""
    lines = []
    for word in words:
        if not lines or word["start"] - lines[-1]["end"] > max_gap or len(lines[-1]["words"]) >= max_words:
            lines.append({"start": word["start"], "end": word["end"], "words": []})
        lines[-1]["words"].append(word)
        lines[-1]["end"] = word["end"]
    for line in lines:
        line["text"] = " ".join(word["word"] for word in line["words"])
    return lines


def srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def lrc_time(seconds: float) -> str:
    cs = int(round(seconds * 100))
    return f"{cs // 6000:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def format_lyrics(result: dict, fmt: str, record: dict, lines: list) -> str:
    if fmt == "txt":
        return "".join(line["text"] + "\n" for line in lines)
    if fmt == "json":
        words = [{"word": w["word"], "start": w["start"], "end": w["end"]} for w in result["words"]]
        kept = [{"start": line["start"], "end": line["end"], "text": line["text"]} for line in lines]
        return json.dumps({**record, "text": result["text"], "words": words, "lines": kept}, indent=1)
    if fmt == "srt":
        return "".join(f"{i}\n{srt_time(line['start'])} --> {srt_time(line['end'])}\n{line['text']}\n\n"
                       for i, line in enumerate(lines, 1))  # fmt: skip
    header = f"[ti:{Path(record['file']).stem}]\n[re:svu lyrics {record['model']}]\n"
    return header + "".join(
        f"[{lrc_time(line['start'])}]" + " ".join(f"<{lrc_time(w['start'])}>{w['word']}" for w in line["words"])
        + f" <{lrc_time(line['end'])}>\n" for line in lines
    )  # fmt: skip


def _seconds(stamp: str) -> float:
    parts = re.split("[:,.]", stamp)
    if len(parts) == 4:  # SRT hh:mm:ss,mmm
        return int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2]) + int(parts[3]) / 1000
    return int(parts[0]) * 60 + int(parts[1]) + int(parts[2]) / 100  # LRC mm:ss.xx


def parse_srt(text: str) -> list:
    """`[{"start", "end", "text"}]` of SRT subtitles; ValueError for a malformed cue."""
    cues = []
    for block in filter(None, (b.strip() for b in text.replace("\r\n", "\n").split("\n\n"))):
        rows = block.split("\n")
        match = re.fullmatch(r"(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})", rows[1]) if len(rows) >= 3 else None
        if not rows[0].isdigit() or match is None:
            raise ValueError(f"not an SRT cue: {block!r}")
        cues.append({"start": _seconds(match[1]), "end": _seconds(match[2]), "text": " ".join(rows[2:])})
    return cues


def parse_lrc(text: str) -> list:
    """`[{"start", "text", "words": [{"word", "start"}]}]` of (enhanced) LRC lyrics; tag lines ([ti:...]) skipped."""
    lines = []
    for row in text.splitlines():
        match = re.fullmatch(r"\[(\d\d:\d\d\.\d\d)\](.*)", row.strip())
        if match is None:
            if row.strip() and not re.fullmatch(r"\[[a-z]+:.*\]", row.strip()):
                raise ValueError(f"not an LRC line: {row!r}")
            continue
        words = [{"word": word, "start": _seconds(stamp)}
                 for stamp, word in re.findall(r"<(\d\d:\d\d\.\d\d)>([^<\s]+)", match[2])]  # fmt: skip
        lines.append({"start": _seconds(match[1]), "text": " ".join(w["word"] for w in words), "words": words})
    return lines


def run_lyrics(args) -> int:
    items = collect_inputs(args, "lyrics")
    model, engine = load_model_and_engine(args.model, args, "lyrics")
    formats = list(dict.fromkeys(args.format or ["txt"]))
    suffixes = [f"lyrics.{fmt}" for fmt in formats]
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = window_options(args)
    if engine is not None:
        options["engine"] = engine
    written = {}

    def outputs(item) -> list:
        return [item.output(out_dir, suffix) for suffix in suffixes]

    def transcribe_one(item) -> Done:
        if item.name in written:
            raise ValueError(f"outputs named {item.name}.lyrics.* were already written for {written[item.name]} (same file name)")
        result = lyrics_file(model, item.path, args.decoder, args.beam_width, args.lm, progress=not args.quiet, **options)
        record = {"file": str(item.path), "model": args.model, "decoder": args.decoder}
        lines = lyric_lines(result["words"], args.line_gap, args.line_words)
        paths = outputs(item)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for fmt, path in zip(formats, paths):
            temporary(path).write_text(format_lyrics(result, fmt, record, lines), encoding="utf-8")
        written[item.name] = item.path
        line = f"{item.path}: {len(result['words'])} words, {len(lines)} lines -> {', '.join(str(p) for p in paths)}"
        return Done(line, paths, result["duration"])

    return run_catalogue("lyrics", items, transcribe_one, outputs, out_dir / MANIFEST,
                         previous=outputs_complete(outputs) if args.skip_existing else None)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("lyrics")
    add_catalogue_options(parser, "outputs (every --format file)")
    parser.add_argument("--model", required=True, help="SVU lyrics model: Hub repo id or local folder")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the outputs (created if missing)")
    parser.add_argument("--format", choices=FORMATS, action="append",
                        help="lyrics file format, repeatable: --format srt --format lrc (default: txt)")
    parser.add_argument("--decoder", choices=("greedy", "beam"), default="greedy",
                        help="greedy CTC (default) or beam search (pyctcdecode)")
    parser.add_argument("--beam-width", type=int, default=32, help="beams of --decoder beam (default 32)")
    parser.add_argument("--lm", help="kenlm n-gram model (.arpa / .bin) for --decoder beam (needs kenlm)")
    parser.add_argument("--line-gap", type=float, default=0.6, help="a pause longer than this (s) starts a line")
    parser.add_argument("--line-words", type=int, default=12, help="words per line at most (default 12)")
    add_window_options(parser)
    add_engine_options(parser)
    add_device_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run_lyrics)
