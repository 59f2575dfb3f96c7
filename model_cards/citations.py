"""BibTeX of the paper SVU follows and of each backbone family's paper (a corpus's own is in its entry,
`dataset_scripts.corpora`).

Long author lists end in `and others` where the full list was not checked against the publication.
"""

PAPER = """@inproceedings{yamamoto2023svu,
  author    = {Yamamoto, Yuya},
  title     = {Toward Leveraging Pre-Trained Self-Supervised Frontends for Automatic Singing Voice Understanding
               Tasks: Three Case Studies},
  booktitle = {Proceedings of the Asia-Pacific Signal and Information Processing Association Annual Summit and
               Conference (APSIPA ASC)},
  year      = {2023},
  eprint    = {2306.12714},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2306.12714}
}"""

WAV2VEC2 = """@inproceedings{baevski2020wav2vec,
  author    = {Baevski, Alexei and Zhou, Yuhao and Mohamed, Abdelrahman and Auli, Michael},
  title     = {wav2vec 2.0: A Framework for Self-Supervised Learning of Speech Representations},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  volume    = {33},
  year      = {2020},
  eprint    = {2006.11477},
  archivePrefix = {arXiv}
}"""

WAVLM = """@article{chen2022wavlm,
  author    = {Chen, Sanyuan and Wang, Chengyi and Chen, Zhengyang and Wu, Yu and Liu, Shujie and Chen, Zhuo and
               Li, Jinyu and Kanda, Naoyuki and Yoshioka, Takuya and Xiao, Xiong and others},
  title     = {{WavLM}: Large-Scale Self-Supervised Pre-Training for Full Stack Speech Processing},
  journal   = {IEEE Journal of Selected Topics in Signal Processing},
  volume    = {16},
  number    = {6},
  pages     = {1505--1518},
  year      = {2022},
  eprint    = {2110.13900},
  archivePrefix = {arXiv}
}"""

HUBERT = """@article{hsu2021hubert,
  author    = {Hsu, Wei-Ning and Bolte, Benjamin and Tsai, Yao-Hung Hubert and Lakhotia, Kushal and
               Salakhutdinov, Ruslan and Mohamed, Abdelrahman},
  title     = {{HuBERT}: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units},
  journal   = {IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  volume    = {29},
  pages     = {3451--3460},
  year      = {2021},
  eprint    = {2106.07447},
  archivePrefix = {arXiv}
}"""

MERT = """@inproceedings{li2024mert,
  author    = {Li, Yizhi and Yuan, Ruibin and Zhang, Ge and Ma, Yinghao and others},
  title     = {{MERT}: Acoustic Music Understanding Model with Large-Scale Self-supervised Training},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2024},
  eprint    = {2306.00107},
  archivePrefix = {arXiv}
}"""

DATA2VEC = """@inproceedings{baevski2022data2vec,
  author    = {Baevski, Alexei and Hsu, Wei-Ning and Xu, Qiantong and Babu, Arun and Gu, Jiatao and Auli, Michael},
  title     = {data2vec: A General Framework for Self-supervised Learning in Speech, Vision and Language},
  booktitle = {Proceedings of the 39th International Conference on Machine Learning (ICML)},
  year      = {2022},
  eprint    = {2202.03555},
  archivePrefix = {arXiv}
}"""

MUSIC2VEC = """@misc{li2022music2vec,
  author    = {Li, Yizhi and Yuan, Ruibin and Zhang, Ge and Ma, Yinghao and others},
  title     = {{MAP-Music2Vec}: A Simple and Effective Baseline for Self-Supervised Music Audio Representation
               Learning},
  howpublished = {ISMIR 2022 Late-Breaking Demo},
  year      = {2022},
  eprint    = {2212.02508},
  archivePrefix = {arXiv}
}"""

# backbone family (SVU `model_type`) -> BibTeX; a published checkpoint id can refine it (MERT, music2vec).
FAMILY_BIBTEX = {"wav2vec2": WAV2VEC2, "wavlm": WAVLM, "hubert": HUBERT, "data2vec-audio": DATA2VEC}
CHECKPOINT_BIBTEX = {"m-a-p/MERT": MERT, "m-a-p/music2vec": MUSIC2VEC}


def backbone_bibtex(family: str, hub_id=None) -> str:
    """The paper of a backbone: the checkpoint's own (MERT, music2vec) when known, else its family's."""
    for prefix, bibtex in CHECKPOINT_BIBTEX.items():
        if hub_id and hub_id.startswith(prefix):
            return bibtex
    return FAMILY_BIBTEX[family]
