"""The paper's test results (Yamamoto, APSIPA 2023), in percent, for the reference column of model cards.

Keyed by the paper's corpus of a task (`modeling_svu.tasks.Task.paper_corpus`), then by backbone family; the metric
keys and their names are the task's `card_metrics`.
"""

# paper corpus -> backbone family -> {metric key: percent}
PAPER_RESULTS = {
    "VocalSet": {
        "wav2vec2": {"macro_f1": 56.1, "accuracy": 58.3, "balanced_accuracy": 60.1, "top2_accuracy": 74.8, "top3_accuracy": 82.1},
        "wavlm": {"macro_f1": 55.6, "accuracy": 60.8, "balanced_accuracy": 57.9, "top2_accuracy": 75.3, "top3_accuracy": 83.8},
        "hubert": {"macro_f1": 54.1, "accuracy": 58.5, "balanced_accuracy": 58.5, "top2_accuracy": 76.1, "top3_accuracy": 85.3},
        "data2vec-audio": {"macro_f1": 60.8, "accuracy": 66.0, "balanced_accuracy": 62.1, "top2_accuracy": 79.0, "top3_accuracy": 86.9},
    },
    "Artist20": {
        "wav2vec2": {"macro_f1": 60.0, "top2_accuracy": 70.7, "top3_accuracy": 76.3},
        "wavlm": {"macro_f1": 61.9, "top2_accuracy": 70.2, "top3_accuracy": 76.4},
        "hubert": {"macro_f1": 56.8, "top2_accuracy": 68.4, "top3_accuracy": 75.6},
        "data2vec-audio": {"macro_f1": 59.6, "top2_accuracy": 71.5, "top3_accuracy": 77.0},
    },
    "MIR-ST500": {
        "wav2vec2": {"COnPOff_f1": 44.8, "COnP_f1": 67.0, "COn_f1": 76.3},
        "wavlm": {"COnPOff_f1": 44.4, "COnP_f1": 67.3, "COn_f1": 76.9},
        "hubert": {"COnPOff_f1": 46.7, "COnP_f1": 71.6, "COn_f1": 78.2},
        "data2vec-audio": {"COnPOff_f1": 50.7, "COnP_f1": 70.0, "COn_f1": 77.9},
    },
}
