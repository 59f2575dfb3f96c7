"""`--push-to-hub`: upload a prepared dataset with `DatasetDict.push_to_hub` and a dataset card.

    push_prepared("data/vocalset", "me/vocalset-svu")               # private repo (the default)
    push_prepared("data/artist20", "me/artist20-svu", public=True)  # public only when asked for

The card (`dataset_card`) holds the corpus' licence, its citation and the paper's, the task categories, the
source, the splits and the preprocessing used; it is staged as ``README.md`` in the prepared folder before the
upload. Repos are private unless ``public=True``; for corpora whose audio may not be redistributed (their
entry's ``no_redistribution``, `corpora.Corpus`) an upload into an existing *public* repo is refused unless
``public=True``.
`stage_for_hub` writes the same repo as a local folder (Parquet with embedded audio + card + `svu_meta.json`),
loadable with `datasets.load_dataset(folder)` and streamed by `train/run.py --streaming` (`svu data prepare
--parquet DIR`).

Shards: each split is written as `shard_count` Parquet files, a multiple of `SHARD_MULTIPLE` = 24 = lcm(1, 2, 3, 4,
6, 8) once it is large enough. `datasets.distributed.split_dataset_by_node` gives each process whole shards
when the shard count is a multiple of the number of processes; otherwise every process reads every shard and
skips the examples of the others. Small splits get the largest divisor of 24 that keeps shards of at least
`MIN_SHARD_BYTES` (a 17 MB split: one shard), large ones 24 x k shards of at most `MAX_SHARD_BYTES`.
"""

import math
import shutil
from pathlib import Path

from datasets.table import embed_table_storage
from huggingface_hub import DatasetCard, DatasetCardData

from svu.model_cards.card import separation_used
from svu.model_cards.citations import PAPER
from svu.modeling_svu.tasks import get_task

from .audio import SAMPLING_RATE
from .corpora import get_corpus
from .prepare import META_FILE, load_prepared, stored_rate
from .separation import HTDEMUCS

CARD_FILE = "README.md"
STORED_RATE_REASON = ("the highest input rate of the supported backbones (MERT-v1), so none hears a narrower band than "
                      "its own; 16 kHz models get it resampled when batches are built (1.5x the storage of 16 kHz)")

SHARD_MULTIPLE = 24
MIN_SHARD_BYTES = 16 * 2**20
MAX_SHARD_BYTES = 500 * 2**20  # `push_to_hub`'s own default shard size


def shard_count(num_bytes: int, num_rows: int) -> int:
    """Parquet shards of a split of `num_bytes` (module docstring): 24 x k shards of 16..500 MiB, or for a
    smaller split the largest divisor of 24 whose shards keep 16 MiB; never more shards than rows."""
    if num_bytes >= SHARD_MULTIPLE * MIN_SHARD_BYTES:
        count = SHARD_MULTIPLE * math.ceil(num_bytes / (SHARD_MULTIPLE * MAX_SHARD_BYTES))
    else:
        divisors = [d for d in range(SHARD_MULTIPLE, 0, -1) if SHARD_MULTIPLE % d == 0]
        count = next(d for d in divisors if num_bytes >= d * MIN_SHARD_BYTES or d == 1)
    return max(1, min(count, num_rows))


def shard_counts(dataset) -> dict:
    """{split: shard_count} of a prepared DatasetDict (its audio is stored in the Arrow table)."""
    return {split: shard_count(part.data.nbytes, len(part)) for split, part in dataset.items()}


def size_category(num_rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if num_rows < limit:
            return name
    return "n>1M"


def stored_audio(meta: dict) -> str:
    """What the card says of the stored audio: its rate, and why that rate."""
    rate = stored_rate(meta)
    why = STORED_RATE_REASON if rate >= SAMPLING_RATE else "prepared by an older SVU; models at a higher rate refuse it"
    return f"Audio stored as {rate} Hz 16-bit PCM mono: {why}"


def dataset_card(meta: dict, split_sizes: dict) -> DatasetCard:
    """The card of a prepared dataset, from its `svu_meta.json` and the number of rows per split."""
    corpus, task, chunk = meta["corpus"], meta["task"], meta["chunk_seconds"]
    spec = get_task(task)
    info = get_corpus(corpus)
    data = DatasetCardData(
        license=info.licence,
        pretty_name=f"{info.title} ({task}), prepared with SVU",
        task_categories=[spec.dataset_category],
        tags=["svu", "singing-voice", "music", *spec.card_tags, corpus.replace("_", "-")],
        size_categories=[size_category(sum(split_sizes.values()))],
        configs=[{"config_name": "default",
                  "data_files": [{"split": split, "path": f"data/{split}-*"} for split in split_sizes]}],
    )
    report = meta.get("report", {})
    hours = report.get("hours", {})
    rows = "\n".join(f"| {split} | {n} | {hours.get(split, '-')} |" for split, n in split_sizes.items())
    options = meta.get("options", {})
    separation = separation_used(corpus, meta, options)
    skipped = report.get("files_skipped", 0)
    citations = "\n\n".join(f"```bibtex\n{entry}\n```" for entry in (info.bibtex, PAPER) if entry)
    body = f"""
# {info.title} for {spec.title.lower()}{"" if spec.classes else f" ({spec.outputs})"} (SVU)

Source: {info.homepage}. Licence: `{info.licence}`. {info.licence_note}

Prepared by `svu data prepare {corpus}` (fingerprint `{meta.get('fingerprint')}`; options `{options}`), following
Yamamoto, APSIPA ASC 2023 ([arXiv:2306.12714](https://arxiv.org/abs/2306.12714)).

## Splits

| split | chunks | hours |
|---|---|---|
{rows}

Split: {meta.get('split') or options.get('split') or 'the corpus default of SVU (see its README)'}; validation:
{meta.get('validation') or 'the validation split above'}. No {spec.leakage} is in two splits.

## Preprocessing

- {info.preprocessing.format(chunk=chunk)}.
- {stored_audio(meta)}.
- Vocal separation: {separation}{f" (random shifts seeded from seed {options.get('seed')})" if separation == HTDEMUCS else ""}.
- Source files: {report.get('files_found', '-')} found, {report.get('files_used', '-')} used, {skipped} skipped
  (reasons in `svu_meta.json`).
- Labels: {', '.join(meta.get('label_names') or []) or spec.dataset_labels or spec.outputs}.

## Citation

{citations}
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")


def write_card(prepared_dir) -> Path:
    """Stage the card as README.md in the prepared folder; returns its path."""
    dataset, meta = load_prepared(prepared_dir)
    path = Path(prepared_dir) / CARD_FILE
    dataset_card(meta, {split: len(part) for split, part in dataset.items()}).save(path)
    return path


def stage_for_hub(prepared_dir, staging_dir, num_shards: dict | None = None) -> Path:
    """Write the repo as a local folder: ``data/<split>-<i>-of-<n>.parquet`` (audio embedded; n = `shard_counts`,
    or `num_shards[split]`), the card and ``svu_meta.json``. Shards are contiguous runs of rows."""
    dataset, meta = load_prepared(prepared_dir)
    staging_dir = Path(staging_dir)
    (staging_dir / "data").mkdir(parents=True, exist_ok=True)
    for old in (staging_dir / "data").glob("*.parquet"):  # a staging of other shard counts would mix in
        old.unlink()
    counts = {**shard_counts(dataset), **(num_shards or {})}
    for split, part in dataset.items():
        embedded = part.with_format("arrow").map(embed_table_storage, batched=True)
        for index in range(counts[split]):
            name = f"data/{split}-{index:05d}-of-{counts[split]:05d}.parquet"
            embedded.shard(counts[split], index, contiguous=True).to_parquet(str(staging_dir / name))
    shutil.copy(Path(prepared_dir) / META_FILE, staging_dir / META_FILE)
    shutil.copy(write_card(prepared_dir), staging_dir / CARD_FILE)
    return staging_dir


def check_visibility(api, corpus: str, repo_id: str, public: bool):
    """ValueError (one line) when restricted audio would land in a public repo without `public=True`."""
    reason = get_corpus(corpus).no_redistribution
    if public or not reason:
        return
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        existing = api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return  # created private below
    if not existing.private:
        raise ValueError(f"refusing to upload {get_corpus(corpus).title} to the public repo {repo_id}: {reason}; "
                         "pass --public to upload it publicly anyway.")


def push_prepared(prepared_dir, repo_id: str, public: bool = False) -> str:
    """Stage the card, then upload the splits (`DatasetDict.push_to_hub`) and the card; returns the commit URL."""
    from huggingface_hub import HfApi

    card_path = write_card(prepared_dir)
    dataset, meta = load_prepared(prepared_dir)
    api = HfApi()
    check_visibility(api, meta["corpus"], repo_id, public)
    api.create_repo(repo_id, repo_type="dataset", private=not public, exist_ok=True)
    # the card first: push_to_hub then merges its `dataset_info` into the card's metadata, keeping the text
    DatasetCard.load(card_path).push_to_hub(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=str(Path(prepared_dir) / META_FILE), path_in_repo=META_FILE,
                    repo_id=repo_id, repo_type="dataset")
    commit = dataset.push_to_hub(repo_id, private=not public, num_shards=shard_counts(dataset),
                                 commit_message="Upload dataset prepared with svu data prepare")
    return str(commit)
