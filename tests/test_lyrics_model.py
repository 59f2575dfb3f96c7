"""Lyrics transcription (issue #24): the CTC model, its vocabulary and tokenizer files, decoding and word timings."""

import json

import numpy as np
import pytest
import torch

from svu.modeling_svu import SVUConfig, SVUForLyricsTranscription
from svu.modeling_svu import ctc


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SVUForLyricsTranscription.from_backbone("tiny-wav2vec2").eval()


def test_vocabulary_and_text_encoding():
    vocab = ctc.DEFAULT_VOCAB
    assert ctc.vocab_text("Don't stop-me, now!", vocab) == "DON'T STOP ME NOW"
    assert "".join(vocab[i] for i in ctc.encode("let it  be", vocab)) == "LET|IT|BE"
    with pytest.raises(ValueError, match="ctc_vocab lacks"):
        ctc.check_vocab(["<pad>", "A"])
    with pytest.raises(ValueError, match="is a lyrics option"):
        SVUConfig(task="pitch", ctc_vocab=list(vocab))
    assert SVUConfig(task="lyrics").ctc_vocab == list(vocab) and SVUConfig(task="pitch").ctc_vocab is None


def test_greedy_decoding_and_word_timings():
    vocab = ctc.DEFAULT_VOCAB
    path = "__LL_A__||_M_I_"  # "_" blank: frames of "LA MI"
    ids = [vocab.index("<pad>") if ch == "_" else vocab.index(ch) for ch in path]
    logits = np.full((len(ids), len(vocab)), -5.0, dtype=np.float32)
    logits[np.arange(len(ids)), ids] = 5.0
    decoded = ctc.greedy_decode(logits, vocab)
    assert decoded["text"] == "LA MI"
    assert ctc.word_timings(decoded["tokens"], 0.02) == [
        {"word": "LA", "start": 0.04, "end": 0.12}, {"word": "MI", "start": 0.22, "end": 0.28}]
    beam = ctc.beam_decode(logits, vocab, beam_width=8)
    assert beam["text"] == "LA MI" and [w["word"] for w in ctc.word_timings(beam["tokens"], 0.02)] == ["LA", "MI"]


def test_ctc_loss_falls_on_one_batch_and_padding_is_ignored(model):
    torch.manual_seed(1)
    x = 0.1 * torch.randn(2, 16000)
    labels = torch.full((2, 6), -100)
    for i, text in enumerate(["LA MI", "SO"]):
        ids = ctc.encode(text, model.config.ctc_vocab)
        labels[i, : len(ids)] = torch.tensor(ids)
    trained = SVUForLyricsTranscription(model.config)
    trained.load_state_dict(model.state_dict())
    trained.train()
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss = trained(x, labels=labels).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    wider = torch.cat([labels, torch.full((2, 4), -100)], 1)  # more padding: same loss
    trained.eval()
    torch.testing.assert_close(trained(x, labels=labels).loss, trained(x, labels=wider).loss)


def test_saved_model_carries_vocab_tokenizer_and_processor(model, tmp_path):
    from transformers import AutoModelForCTC, Wav2Vec2CTCTokenizer

    model.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab == {token: i for i, token in enumerate(ctc.DEFAULT_VOCAB)}
    assert (tmp_path / "tokenizer_config.json").is_file() and (tmp_path / "preprocessor_config.json").is_file()
    tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(tmp_path)
    assert tokenizer.decode(ctc.encode("la mi", model.config.ctc_vocab)) == "LA MI"
    loaded = AutoModelForCTC.from_pretrained(tmp_path, trust_remote_code=True)
    x = 0.1 * torch.randn(1, 16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits)


def test_wav2vec2_base_960h_ctc_head_initialises_the_head_exactly(tmp_path):
    """The emulated facebook/wav2vec2-base-960h (as published: vocab.json, tokenizer files, `lm_head`): before
    training, the lyrics model gives the checkpoint's own Wav2Vec2ForCTC logits; the card says where the head is from."""
    from fixtures.published_backbones import REPOS, write_repo
    from transformers import Wav2Vec2ForCTC

    from model_cards.card import head_init_line

    folder = write_repo(tmp_path, "facebook/wav2vec2-base-960h", REPOS["facebook/wav2vec2-base-960h"]())
    model = SVUForLyricsTranscription.from_backbone(str(folder)).eval()
    reference = Wav2Vec2ForCTC.from_pretrained(folder).eval()
    x = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, reference(x).logits, rtol=1e-5, atol=1e-5)
    assert model.config.ctc_head_init == str(folder)
    assert "Ou et al." in head_init_line(model.config.ctc_head_init)

    other = SVUForLyricsTranscription.from_backbone(str(folder), ctc_vocab=[*ctc.DEFAULT_VOCAB[:-1], "-"])
    assert not torch.equal(other.head.weight, reference.lm_head.weight)  # another vocabulary: a random head
