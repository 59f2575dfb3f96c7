"""SVU forward vs the bare backbone (all hidden states) and vs transformers' own weighted-layer-sum classifier.

All three share the same random base-size wav2vec2 weights and run in eval mode under `torch.inference_mode`.
Goal: SVU <= 1.03x the bare backbone with `output_hidden_states=True`, and <= 1.00x
`Wav2Vec2ForSequenceClassification(use_weighted_layer_sum=True)`.
"""

import copy

import torch
from transformers import Wav2Vec2ForSequenceClassification

from svu.modeling_svu import SVUForSingerID

from .common import Row, backbone_config, check, interleaved_best, random_audio

NAME = "forward_overhead"


def build_models(smoke: bool, num_labels: int = 20):
    config = backbone_config(smoke)
    svu = SVUForSingerID.from_backbone(config, id2label={i: f"singer{i}" for i in range(num_labels)}).eval()
    hf_config = copy.deepcopy(svu.config.backbone_config)
    hf_config.use_weighted_layer_sum = True
    hf_config.num_labels = num_labels
    hf = Wav2Vec2ForSequenceClassification(hf_config).eval()
    hf.wav2vec2.load_state_dict(svu.backbone.state_dict())
    return svu, hf


def run(smoke: bool) -> list:
    svu, hf = build_models(smoke)
    batch, seconds, repeats = (2, 1.0, 2) if smoke else (4, 5.0, 15)
    audio = random_audio(seconds, batch)

    def svu_forward():
        with torch.inference_mode():
            return svu(audio).logits

    def bare_forward():
        with torch.inference_mode():
            return svu.backbone(audio, output_hidden_states=True).hidden_states

    def hf_forward():
        with torch.inference_mode():
            return hf(audio).logits

    best = interleaved_best({"svu": svu_forward, "bare": bare_forward, "hf": hf_forward}, repeats)
    size = "tiny" if smoke else "base"
    case = f"{size}, {batch} x {seconds:g} s, best of {repeats}"
    vs_bare = best["svu"] / best["bare"]
    vs_hf = best["svu"] / best["hf"]
    return [
        Row(NAME, "SVU / bare backbone (output_hidden_states)", vs_bare, goal="<= 1.03", met=check(vs_bare, "<= 1.03", smoke), note=case),
        Row(NAME, "SVU / HF Wav2Vec2ForSequenceClassification (weighted layer sum)", vs_hf, goal="<= 1.00", met=check(vs_hf, "<= 1.00", smoke), note=case),
        Row(NAME, "SVU forward time", best["svu"], unit="s", note=case),
    ]
