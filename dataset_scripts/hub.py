"""`--push-to-hub`: stage a prepared dataset as Parquet (audio bytes embedded) and upload it.

The staged folder is a standard Hub dataset repo: ``data/<split>-00000-of-00001.parquet``,
``svu_meta.json`` and a ``README.md`` whose YAML ``configs`` block maps the splits, so
``datasets.load_dataset(<folder or repo id>)`` gives the same splits and features back.
"""

import shutil
import tempfile
from pathlib import Path

from datasets.table import embed_table_storage

from .prepare import META_FILE, load_prepared

CARD = """---
configs:
- config_name: default
  data_files:
{files}
---
# {corpus} ({task}) prepared with SVU

Prepared by `svu data prepare {corpus}`: {chunk_seconds:g} s chunks at 16 kHz; see `svu_meta.json`
for the label names, class weights, the preparation report and the fingerprint.
"""


def stage_for_hub(prepared_dir, staging_dir) -> Path:
    """Write the Parquet + card + meta folder that `push_prepared` uploads; returns it."""
    dataset, meta = load_prepared(prepared_dir)
    staging_dir = Path(staging_dir)
    (staging_dir / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for split, part in dataset.items():
        name = f"data/{split}-00000-of-00001.parquet"
        part.with_format("arrow").map(embed_table_storage, batched=True).to_parquet(str(staging_dir / name))
        files.append(f"  - split: {split}\n    path: {name}")
    shutil.copy(Path(prepared_dir) / META_FILE, staging_dir / META_FILE)
    (staging_dir / "README.md").write_text(CARD.format(files="\n".join(files), **meta))
    return staging_dir


def push_prepared(prepared_dir, repo_id: str, private: bool = False, staging_dir=None) -> str:
    """Stage then upload to the Hub dataset repo ``repo_id``; returns the commit URL."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="svu-hub-") as scratch:
        folder = stage_for_hub(prepared_dir, staging_dir or scratch)
        api = HfApi()
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                   commit_message="Upload dataset prepared with svu data prepare")
    return str(commit)
