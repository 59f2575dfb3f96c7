"""BibTeX of the paper SVU follows, of each backbone family's paper and of each corpus, and the corpora's licences.

Long author lists end in `and others` where the full list was not checked against the publication.
"""

from dataclasses import dataclass

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

VOCALSET = """@inproceedings{wilkins2018vocalset,
  author    = {Wilkins, Julia and Seetharaman, Prem and Wahl, Alison and Pardo, Bryan},
  title     = {{VocalSet}: A Singing Voice Dataset},
  booktitle = {Proceedings of the 19th International Society for Music Information Retrieval Conference (ISMIR)},
  pages     = {468--474},
  year      = {2018}
}"""

ARTIST20 = """@inproceedings{ellis2007artist20,
  author    = {Ellis, Daniel P. W.},
  title     = {Classifying Music Audio with Timbral and Chroma Features},
  booktitle = {Proceedings of the 8th International Conference on Music Information Retrieval (ISMIR)},
  pages     = {339--340},
  year      = {2007}
}"""

MIR_ST500 = """@inproceedings{wang2021mirst500,
  author    = {Wang, Jun-You and Jang, Jyh-Shing Roger},
  title     = {On the Preparation and Validation of a Large-Scale Dataset of Singing Transcription},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  pages     = {276--280},
  year      = {2021}
}"""

VOCADITO = """@techreport{bittner2021vocadito,
  author      = {Bittner, Rachel M. and Pasalo, Katherine and Bosch, Juan Jos{\'e} and Meseguer-Brocal, Gabriel and
                 Rubinstein, David},
  title       = {vocadito: A dataset of solo vocals with $f_0$, note, and lyric annotations},
  institution = {Spotify},
  year        = {2021},
  eprint      = {2110.05580},
  archivePrefix = {arXiv}
}"""

MIR1K = """@article{hsu2010mir1k,
  author  = {Hsu, Chao-Ling and Jang, Jyh-Shing Roger},
  title   = {On the Improvement of Singing Voice Separation for Monaural Recordings Using the {MIR-1K} Dataset},
  journal = {IEEE Transactions on Audio, Speech, and Language Processing},
  volume  = {18},
  number  = {2},
  pages   = {310--319},
  year    = {2010},
  doi     = {10.1109/TASL.2009.2026503}
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


@dataclass(frozen=True)
class Corpus:
    title: str
    licence: str  # Hub `license:` identifier of what SVU prepares from it
    licence_note: str  # one line: what the licence covers and why
    source: str
    bibtex: str
    public_push_refused: str = ""  # non-empty: why a public Hub upload needs --public


CORPORA = {
    "vocalset": Corpus(
        "VocalSet", "cc-by-4.0", "VocalSet is released under CC BY 4.0 (Zenodo record 1193957).",
        "https://zenodo.org/record/1193957", VOCALSET,
    ),
    "artist20": Corpus(
        "Artist20", "other",
        "Artist20 holds commercial recordings (copyrighted albums), distributed by LabROSA for research only.",
        "https://labrosa.ee.columbia.edu/projects/artistid/", ARTIST20,
        public_push_refused="Artist20 is copyrighted commercial music distributed for research only",
    ),
    "mir_st500": Corpus(
        "MIR-ST500", "other",
        "MIR-ST500's annotations come from its authors; its audio is copyrighted pop songs fetched from YouTube.",
        "https://github.com/york135/singing_transcription_ICASSP2021", MIR_ST500,
        public_push_refused="MIR-ST500 audio is copyrighted songs downloaded from YouTube",
    ),
    "vocadito": Corpus(
        "vocadito", "cc-by-4.0", "vocadito is released under CC BY 4.0 (Zenodo record 5578807).",
        "https://zenodo.org/record/5578807", VOCADITO,
    ),
    "mir1k": Corpus(
        "MIR-1K", "other",
        "MIR-1K is offered by the MIR Lab (National Taiwan University) for download without a stated licence; "
        "its clips are karaoke recordings of copyrighted Chinese pop songs.",
        "http://mirlab.org/dataset/public/", MIR1K,
        public_push_refused="MIR-1K states no licence and holds karaoke recordings of copyrighted songs",
    ),
    "synthetic": Corpus(
        "SVU synthetic singing corpus", "apache-2.0",
        "Generated by SVU's `dataset_scripts/synthetic.py` (Apache-2.0, like the SVU code).",
        "dataset_scripts/synthetic.py in the SVU repository", "",
    ),
}
