"""SVU: singing voice understanding on pre-trained self-supervised audio backbones.

Installed, everything lives under this package: `svu.modeling_svu`, `svu.dataset_scripts`, `svu.train`,
`svu.model_cards` and the `svu` commands. In a clone those folders sit beside `svu/` (the layout a model repo's
remote code and `accelerate launch train/run.py` expect), so the clone's root is searched as part of the package.
"""
from pathlib import Path as _Path

_CLONE_ROOT = _Path(__file__).resolve().parent.parent
if (_CLONE_ROOT / "modeling_svu" / "__init__.py").is_file() and (_CLONE_ROOT / "pyproject.toml").is_file():
    __path__.append(str(_CLONE_ROOT))
