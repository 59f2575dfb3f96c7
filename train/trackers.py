"""`TrainConfig.report_to`: the experiment trackers a run logs to, through Accelerate's own trackers.

    report_to: tensorboard            # default: <output_dir>/logs
    report_to: [tensorboard, wandb]   # several
    report_to: all                    # every tracker Accelerate finds installed
    report_to: none                   # no tracker: nothing written besides the run's own files

Accelerate silently skips a named tracker whose package is missing; here that is one error line naming the package.
"""

from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_trackio_available, is_wandb_available

# tracker name -> (pip package, availability check as Accelerate makes it)
TRACKERS = {
    "tensorboard": ("tensorboard", is_tensorboard_available),
    "wandb": ("wandb", is_wandb_available),
    "trackio": ("trackio", is_trackio_available),
    "mlflow": ("mlflow", is_mlflow_available),
}
ALL_OR_NONE = ("all", "none")


def tracker_names(report_to) -> list:
    """The trackers named by `report_to` (a name, a list of names, all or none); ValueError for other values."""
    if isinstance(report_to, str) and report_to in ALL_OR_NONE:
        return []
    names = [report_to] if isinstance(report_to, str) else report_to
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"report_to must be a tracker name, a list of them, all or none; got {report_to!r}.")
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ValueError(f"Unknown report_to tracker {unknown[0]!r}; expected {', '.join(TRACKERS)}, all or none.")
    return names


def accelerate_log_with(report_to):
    """`Accelerator(log_with=...)` for `report_to` (checked by `tracker_names`); ValueError naming the package to
    install for a tracker that is not installed."""
    if report_to == "none":
        return None
    if report_to == "all":
        return "all"
    names = tracker_names(report_to)
    for name in names:
        package, available = TRACKERS[name]
        if not available():
            raise ValueError(f"report_to {name} needs the {package} package: pip install {package}")
    return names
