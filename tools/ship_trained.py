"""Copy a finished training run's weights into the package and print its catalogue line.

Maintainer tool for the models superres ships (``superres/zoo/trained.py``):

    python tools/ship_trained.py runs/fsrcnn_x3_291_s3 fsrcnn-x3

It copies ``RUN/last.safetensors`` (the last EMA weights; never the best-on-Set5 ones, as Set5
is the test set) to ``superres/zoo/weights/NAME.safetensors`` and prints the tuple to paste into
``_TRAINED``: name, arch, kwargs (from the file's header, holding the scale) and the tensor hash checked
at load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from superres.zoo.cache import tensors_sha256

WEIGHTS = Path(__file__).resolve().parents[1] / "superres" / "zoo" / "weights"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="training output folder")
    p.add_argument("name", help="model name, e.g. fsrcnn-x3")
    args = p.parse_args()
    src = args.run / "last.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = f.metadata() or {}
    kwargs = json.loads(meta["superres.kwargs"])
    sha = tensors_sha256(load_file(str(src)))
    dst = WEIGHTS / f"{args.name}.safetensors"
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    print(f"{dst}: iteration {meta.get('superres.iteration')}, weights {meta.get('superres.weights')}")
    print(f'    ("{args.name}", "{meta["superres.arch"]}", {kwargs!r},\n     "{sha}"),')


if __name__ == "__main__":
    main()
