"""The pre-trained checkpoints SVU knows by name: Hub id, family, sampling rate, licence and short aliases.

This is the one table of checkpoint facts (`backbones.FAMILIES` holds only family facts): `from_backbone`,
`train/run.py --backbone`, the configs and the model cards all resolve names here. The aliases that equal a
family name (`wav2vec2`, `wavlm`, `hubert`, `data2vec-audio`) name the paper's checkpoint of that family.

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
    sampling_rate: int = 16000  # the rate the checkpoint was trained at (its preprocessor's `sampling_rate`)
    aliases: tuple = ()


PUBLISHED = {
    ckpt.hub_id: ckpt
    for ckpt in (
        PublishedCheckpoint(
            "facebook/wav2vec2-base-960h", "wav2vec2", "apache-2.0",
            "card metadata `license: apache-2.0` (https://huggingface.co/facebook/wav2vec2-base-960h; read in the "
            "copy of the card at github.com/axinc-ai/ailia-models lipsync/hallo/wav2vec/wav2vec2-base-960h/README.md)",
            aliases=("wav2vec2", "w2v2"),
        ),
        PublishedCheckpoint(
            "microsoft/wavlm-base-plus", "wavlm", "cc-by-sa-3.0",
            "card section 'License' (no `license:` metadata): 'The official license can be found here' -> "
            "https://github.com/microsoft/UniSpeech/blob/main/LICENSE, Attribution-ShareAlike 3.0 Unported "
            "(read at UniSpeech commit 40d32279; card read in the copy at github.com/fishaudio/Bert-VITS2 "
            "slm/wavlm-base-plus/README.md)",
            aliases=("wavlm",),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v0-public", "hubert", "cc-by-nc-4.0",
            "https://huggingface.co/m-a-p/MERT-v0-public (a 2023 copy of the card says mit; the family's cards "
            "moved to cc-by-nc-4.0 and the current card could not be read offline: the more restrictive is carried)",
            aliases=("mert", "hubert", "mert-v0-public"),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v1-95M", "hubert", "cc-by-nc-4.0",
            "card metadata `license: cc-by-nc-4.0` (https://huggingface.co/m-a-p/MERT-v1-95M, revision 11578f2; "
            "an early revision said mit)",
            sampling_rate=24000, aliases=("mert-v1-95m",),
        ),
        PublishedCheckpoint(
            "m-a-p/MERT-v1-330M", "hubert", "cc-by-nc-4.0",
            "https://huggingface.co/m-a-p/MERT-v1-330M (not read here; the MERT-v1 cards say cc-by-nc-4.0, read on "
            "MERT-v1-95M's card)",
            sampling_rate=24000, aliases=("mert-v1-330m",),
        ),
        PublishedCheckpoint(
            "m-a-p/music2vec-v1", "data2vec-audio", "cc-by-nc-4.0",
            "card metadata `license: cc-by-nc-4.0` (https://huggingface.co/m-a-p/music2vec-v1/resolve/main/README.md)",
            aliases=("music2vec", "data2vec-audio", "data2vec"),
        ),
    )
}

_BY_ALIAS = {alias: ckpt for ckpt in PUBLISHED.values() for alias in (ckpt.hub_id.lower(), *ckpt.aliases)}


def published_checkpoint(name: Optional[str]) -> Optional[PublishedCheckpoint]:
    """The known checkpoint behind a short alias (`"mert"`, `"mert-v1-95m"`) or a Hub id, else None."""
    if not name:
        return None
    return _BY_ALIAS.get(str(name).lower())


def checkpoint_aliases() -> list:
    """Every short alias, sorted (for error messages and docs)."""
    return sorted(alias for ckpt in PUBLISHED.values() for alias in ckpt.aliases)


def resolve_family_name(name: str) -> str:
    """A family name, or the family of a published checkpoint's alias or Hub id ('mert' -> 'hubert',
    'music2vec' -> 'data2vec-audio'); ValueError when unknown."""
    from .backbones import FAMILIES  # transformers' config classes: not needed to read the table

    key = name.lower()
    if key in FAMILIES:
        return key
    checkpoint = published_checkpoint(key)
    if checkpoint is None:
        raise ValueError(
            f"Unknown backbone family {name!r}; expected one of {sorted(set(FAMILIES) | set(checkpoint_aliases()))}."
        )
    return checkpoint.family
