"""The pre-trained checkpoints SVU knows by name: Hub id, family, sampling rate and licence.

The licence is what the checkpoint's Hub card says, with where it was read, so that a model card of an SVU
model fine-tuned from it can carry it. Where the current card could not be read offline, the more restrictive
of the known licences is carried and `licence_source` links the card.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PublishedCheckpoint:
    hub_id: str
    family: str  # an SVU backbone family (`backbones.FAMILIES` key)
    licence: str  # Hub `license:` identifier
    licence_source: str  # where the licence was read
    sampling_rate: int = 16000
    aliases: tuple = ()


PUBLISHED = {
    ckpt.hub_id: ckpt
    for ckpt in (
        PublishedCheckpoint(
            "facebook/wav2vec2-base-960h", "wav2vec2", "apache-2.0",
            "https://huggingface.co/facebook/wav2vec2-base-960h (card metadata)", aliases=("wav2vec2", "w2v2"),
        ),
        PublishedCheckpoint(
            "microsoft/wavlm-base-plus", "wavlm", "unknown",
            "https://huggingface.co/microsoft/wavlm-base-plus (to be checked)", aliases=("wavlm",),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v0-public", "hubert", "cc-by-nc-4.0",
            "https://huggingface.co/m-a-p/MERT-v0-public (said mit in 2023; the family moved to cc-by-nc-4.0)",
            aliases=("mert", "mert-v0-public"),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v1-95M", "hubert", "cc-by-nc-4.0", "https://huggingface.co/m-a-p/MERT-v1-95M (card)",
            sampling_rate=24000, aliases=("mert-v1-95m",),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v1-330M", "hubert", "cc-by-nc-4.0", "https://huggingface.co/m-a-p/MERT-v1-330M (card)",
            sampling_rate=24000, aliases=("mert-v1-330m",),
        ),
        PublishedCheckpoint(
            "m-a-p/music2vec-v1", "data2vec-audio", "cc-by-nc-4.0", "https://huggingface.co/m-a-p/music2vec-v1 (card)",
            aliases=("music2vec",),
        ),
    )
}

_BY_ALIAS = {alias: ckpt for ckpt in PUBLISHED.values() for alias in (ckpt.hub_id.lower(), *ckpt.aliases)}


def published_checkpoint(name: Optional[str]) -> Optional[PublishedCheckpoint]:
    """The known checkpoint behind a short alias (`"mert"`, `"mert-v1-95m"`) or a Hub id, else None."""
    if not name:
        return None
    return _BY_ALIAS.get(str(name).lower())
