"""Prompt tokenisation for SDXL's two CLIP encoders, from local vocabulary files only.

Both encoders use CLIP's BPE vocabulary; they differ in padding: CLIP-L (transformers' openai
tokenizer) pads with the end token, OpenCLIP bigG pads with id 0 ("!"). Sequences are 77 tokens,
truncated with the end token kept, as upstream. The vocabulary (``vocab.json`` + ``merges.txt``)
comes from the user, e.g. the ``tokenizer/`` folder of the stabilityai/stable-diffusion-xl-base-1.0
repository; superres never downloads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from superres.restore.settings import A_PROMPT, N_PROMPT

__all__ = ["A_PROMPT", "ENV_TOKENIZER", "N_PROMPT", "Tokenizers", "find_vocab", "load_tokenizers"]

ENV_TOKENIZER = "SUPERRES_CLIP_TOKENIZER"
_HELP = (
    "SDXL's CLIP tokenizer files (vocab.json and merges.txt) are needed for the prompts and are never "
    "downloaded: pass --tokenizer DIR (or set SUPERRES_CLIP_TOKENIZER) with a folder holding them, e.g. "
    "the tokenizer/ folder of stabilityai/stable-diffusion-xl-base-1.0"
)


def find_vocab(path: str | Path | None = None) -> Path:
    """The folder with vocab.json + merges.txt: ``path``, ``$SUPERRES_CLIP_TOKENIZER``, or an error."""
    candidates = [Path(p) for p in (path, os.environ.get(ENV_TOKENIZER)) if p]
    for base in candidates:
        for folder in (base, base / "tokenizer"):
            if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
                return folder
    where = f" (looked in {', '.join(map(str, candidates))})" if candidates else ""
    raise FileNotFoundError(_HELP + where)


class Tokenizers:
    """Token ids for CLIP-L and bigG from one BPE vocabulary."""

    def __init__(self, folder: Path, length: int = 77) -> None:
        from transformers import CLIPTokenizer

        self.length = length
        self.tok: Any = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.end_id = int(self.tok.convert_tokens_to_ids("<|endoftext|>"))

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """(CLIP-L ids padded with the end token, bigG ids padded with 0), each [B, 77]."""
        ids = self.tok(texts, truncation=True, max_length=self.length, padding=False)["input_ids"]
        ids_l = torch.full((len(texts), self.length), self.end_id, dtype=torch.long)
        ids_g = torch.zeros((len(texts), self.length), dtype=torch.long)
        for i, seq in enumerate(ids):
            ids_l[i, : len(seq)] = torch.tensor(seq)
            ids_g[i, : len(seq)] = torch.tensor(seq)
        return ids_l, ids_g


def load_tokenizers(path: str | Path | None = None) -> Tokenizers:
    return Tokenizers(find_vocab(path))
