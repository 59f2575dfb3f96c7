"""The backbone families SVU wraps, and what differs between them.

Each family is a transformers audio encoder whose hidden states are summed by SVU:
the CNN-projection output plus one state per transformer layer (13 for base models).
"""

from dataclasses import dataclass

from transformers import (
    Data2VecAudioConfig,
    HubertConfig,
    PretrainedConfig,
    Wav2Vec2Config,
    WavLMConfig,
)



@dataclass(frozen=True)
class BackboneFamily:
    model_type: str
    config_class: type
    paper_name: str
    # Wav2Vec2FeatureExtractor.do_normalize of the family's pre-trained checkpoints.
    do_normalize: bool
    # Linear layers LoRA/adapters can target (names as in the transformers module tree).
    lora_target_modules: tuple = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense")

    def supports_attention_mask(self, config: PretrainedConfig) -> bool:
        """Whether the backbone should see the attention mask (as its feature extractor returns one).

        Group-norm CNNs (wav2vec2-base, HuBERT/MERT-base) normalise each channel over the whole
        input, padding included, so they are fed zero-padded audio without a mask, like in
        transformers; their batched outputs then differ slightly from one-by-one outputs.
        """
        if self.model_type in ("wavlm", "data2vec-audio"):
            return True
        return getattr(config, "feat_extract_norm", "group") == "layer"


FAMILIES = {
    "wav2vec2": BackboneFamily("wav2vec2", Wav2Vec2Config, "Wav2Vec2.0", do_normalize=True),
    "wavlm": BackboneFamily(
        "wavlm", WavLMConfig, "WavLM", do_normalize=False,
        # WavLM's attention passes q/k/v_proj weights straight to F.multi_head_attention_forward,
        # so LoRA on them never runs (and gets no gradient); only the FFN and out_proj paths work.
        lora_target_modules=("intermediate_dense", "output_dense"),
    ),
    "hubert": BackboneFamily("hubert", HubertConfig, "MERT", do_normalize=True),
    "data2vec-audio": BackboneFamily("data2vec-audio", Data2VecAudioConfig, "Map-Music2Vec", do_normalize=True),
}


def family_of(config) -> BackboneFamily:
    """The family of a backbone config, its dict or its `model_type`; ValueError for unsupported ones."""
    if isinstance(config, dict):
        model_type = config.get("model_type")
    else:
        model_type = config if isinstance(config, str) or config is None else getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(
            f"Unsupported backbone family {model_type!r}; SVU supports {sorted(FAMILIES)}."
        )
    return FAMILIES[model_type]


def tiny_backbone_config(family: str = "wav2vec2", **overrides) -> PretrainedConfig:
    """A tiny randomly-initialisable backbone config for tests and demos.

    The CNN keeps the real kernels and strides (one frame = 320 samples = 20 ms at 16 kHz, 13.3 ms at 24 kHz) so frame
    targets line up exactly as with the real checkpoints; only widths and depths shrink.
    """
    if family.lower() not in FAMILIES:
        raise ValueError(f"Unknown backbone family {family!r}; expected one of {sorted(FAMILIES)} (a published "
                         "checkpoint's alias: `checkpoints.resolve_family_name`).")
    fam = FAMILIES[family.lower()]
    kwargs = dict(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    if fam.model_type == "wavlm":
        kwargs.update(num_buckets=16, max_bucket_distance=40)
    if fam.model_type == "data2vec-audio":
        kwargs.update(num_conv_pos_embeddings=5, conv_pos_kernel_size=5)
    kwargs.update(overrides)
    return fam.config_class(**kwargs)
