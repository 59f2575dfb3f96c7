"""CTC over a character vocabulary (lyrics transcription): the vocabulary, text to token ids, greedy and beam
decoding, word timings from the alignment, and the tokenizer / processor saved with a model.

    ids = encode("Let it be", vocab)                     # [15, 5, 6, 4, 10, 6, 4, 24, 5]: "LET|IT|BE"
    decoded = greedy_decode(logits, vocab)               # {"text", "tokens": [(token, first_frame, end_frame)]}
    words = word_timings(decoded["tokens"], frame_seconds)   # [{"word", "start", "end"}] in seconds

A token's frames are the run of frames whose best label is that token (CTC emits a token on its first frame and
may hold it); a word spans its first token's first frame to its last token's last frame.
"""

import importlib
import json
import os

import numpy as np

PAD = "<pad>"  # the CTC blank, as in transformers' Wav2Vec2CTCTokenizer
UNK = "<unk>"
WORD_DELIMITER = "|"
# facebook/wav2vec2-base-960h's vocab.json, in id order: a lyrics head with this vocabulary can start from that
# checkpoint's CTC head (`lm_head`), the speech-to-singing transfer of Ou et al.
DEFAULT_VOCAB = (
    "<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M", "W", "C",
    "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z",
)
SPECIAL = (PAD, "<s>", "</s>", UNK)


def check_vocab(vocab) -> None:
    """ValueError (one line) for a vocabulary CTC cannot use: repeated tokens, or no blank / word delimiter / unk."""
    vocab = list(vocab)
    repeated = sorted({token for token in vocab if vocab.count(token) > 1})
    if repeated:
        raise ValueError(f"ctc_vocab repeats {repeated}; each token once.")
    missing = [token for token in (PAD, WORD_DELIMITER, UNK) if token not in vocab]
    if missing:
        raise ValueError(f"ctc_vocab lacks {missing}: the blank {PAD!r}, the word delimiter {WORD_DELIMITER!r} and {UNK!r} are needed.")


def vocab_text(text: str, vocab) -> str:
    """`text` as the vocabulary spells it: upper case (when the vocabulary has no lower-case letters), words split on
    white space and hyphens, other characters the vocabulary lacks dropped; words joined by single spaces."""
    tokens = set(vocab)
    if not any(token.islower() for token in tokens if len(token) == 1):
        text = text.upper()
    words = []
    for word in text.replace("-", " ").split():
        kept = "".join(ch for ch in word if ch in tokens and ch != WORD_DELIMITER)
        if kept:
            words.append(kept)
    return " ".join(words)


def encode(text: str, vocab) -> list:
    """Token ids of `text` (`vocab_text`, spaces as the word delimiter)."""
    index = {token: i for i, token in enumerate(vocab)}
    return [index[WORD_DELIMITER] if ch == " " else index[ch] for ch in vocab_text(text, vocab)]


def _as_numpy(logits) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    return np.asarray(logits, dtype=np.float32)


def collapse(best: np.ndarray, vocab) -> list:
    """`[(token, first_frame, end_frame)]` of a best-label-per-frame sequence: runs merged, blanks and specials
    dropped (the word delimiter kept)."""
    tokens, start = [], 0
    for frame in range(1, len(best) + 1):
        if frame == len(best) or best[frame] != best[start]:
            token = vocab[int(best[start])]
            if token not in SPECIAL or token == UNK:
                tokens.append((token, start, frame))
            start = frame
    return tokens


def tokens_text(tokens) -> str:
    text = "".join(" " if token == WORD_DELIMITER else token for token, _, _ in tokens)
    return " ".join(text.split())


def greedy_decode(logits, vocab) -> dict:
    """Best path of (frames, vocab) logits: ``{"text", "tokens"}``."""
    logits = _as_numpy(logits)
    tokens = collapse(logits.argmax(-1) if len(logits) else np.zeros(0, dtype=int), vocab)
    return {"text": tokens_text(tokens), "tokens": tokens}


def word_timings(tokens, frame_seconds: float) -> list:
    """`[{"word", "start", "end"}]` (seconds) of collapsed tokens (`collapse`): words split at the delimiter."""
    words, current = [], []
    for token in list(tokens) + [(WORD_DELIMITER, None, None)]:
        if token[0] == WORD_DELIMITER:
            if current:
                words.append({"word": "".join(t for t, _, _ in current), "start": round(current[0][1] * frame_seconds, 3),
                              "end": round(current[-1][2] * frame_seconds, 3)})
            current = []
        else:
            current.append(token)
    return words


def pyctcdecode_status() -> str:
    """One line: what beam search decodes with here (an n-gram LM needs kenlm)."""
    try:
        importlib.import_module("pyctcdecode")
    except ImportError:
        return ("beam search needs pyctcdecode (pip install --no-deps pyctcdecode pygtrie: its numpy<2 pin is stale); "
                "greedy decoding only")
    try:
        importlib.import_module("kenlm")
    except ImportError:
        return "kenlm is not installed: beam search without a language model"
    return "beam search with an optional kenlm n-gram language model"


_DECODERS = {}


def beam_decoder(vocab, lm_path=None):
    """A `pyctcdecode` decoder of `vocab` (blank and delimiter mapped to pyctcdecode's "" and " "), with the kenlm
    model at `lm_path` if given; cached per (vocab, lm_path)."""
    key = (tuple(vocab), lm_path)
    if key not in _DECODERS:
        pyctcdecode = importlib.import_module("pyctcdecode")  # by name: a saved repo's code imports only torch/transformers/numpy
        labels = ["" if token == PAD else " " if token == WORD_DELIMITER else "⁇" if token == UNK else
                  token if token not in SPECIAL else f"\ue000{i}" for i, token in enumerate(vocab)]  # fmt: skip
        if lm_path is not None:
            try:
                importlib.import_module("kenlm")
            except ImportError:
                raise ImportError(f"lm_path={lm_path!r} needs kenlm (pip install kenlm); without it, beam search "
                                  "runs without a language model (omit lm_path).") from None
        _DECODERS[key] = pyctcdecode.build_ctcdecoder(labels, kenlm_model_path=lm_path)
    return _DECODERS[key]


def beam_decode(logits, vocab, beam_width: int = 32, lm_path=None) -> dict:
    """Beam search (`beam_decoder`) of (frames, vocab) logits: ``{"text", "tokens"}``, tokens as `collapse` gives them
    (a word's characters share its frames, one token per word plus delimiters)."""
    logits = _as_numpy(logits)
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    special = [i for i, token in enumerate(vocab) if token in SPECIAL and token not in (PAD, UNK)]
    log_probs[:, special] = -1e4  # never emitted (as in greedy decoding, where they are dropped)
    beam = beam_decoder(vocab, lm_path).decode_beams(log_probs, beam_width=beam_width)[0]
    tokens = []
    for word, (start, end) in beam[2]:
        if tokens:
            tokens.append((WORD_DELIMITER, start, start))
        tokens.append((word, start, end))
    return {"text": " ".join(word for word, _ in beam[2]), "tokens": tokens}


def decode(logits, vocab, decoder: str = "greedy", beam_width: int = 32, lm_path=None) -> dict:
    if decoder == "greedy":
        return greedy_decode(logits, vocab)
    if decoder == "beam":
        return beam_decode(logits, vocab, beam_width, lm_path)
    raise ValueError(f"decoder={decoder!r}: 'greedy' or 'beam'.")


def save_processor(vocab, feature_extractor, folder) -> None:
    """Write `vocab.json`, transformers' `Wav2Vec2CTCTokenizer` of it and the `Wav2Vec2Processor` (feature extractor +
    tokenizer) into `folder`, so that `Wav2Vec2Processor.from_pretrained(folder)` decodes the model's ids."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2Processor

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vocab.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f, ensure_ascii=False)
    tokenizer = Wav2Vec2CTCTokenizer(path, unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD_DELIMITER,
                                     bos_token="<s>", eos_token="</s>", do_lower_case=False)  # fmt: skip
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder)
