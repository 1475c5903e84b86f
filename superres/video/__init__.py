"""Video upscaling with PyAV: exact frames and timestamps, audio kept, resumable, atomic.

Install with ``pip install superres[video]`` (PyAV; its wheel bundles FFmpeg). The model and
engine know nothing about video: this package decodes frames to RGB arrays, hands them to
an engine's ``upscale_arrays`` and encodes the results. See docs/video.md.
"""

from __future__ import annotations

from superres.video.errors import VideoError
from superres.video.pipeline import VideoOptions, assemble_frames, upscale_video
from superres.video.probe import VideoInfo, probe
from superres.video.sources import RunReport

__all__ = ["RunReport", "VideoError", "VideoInfo", "VideoOptions", "assemble_frames", "probe",
           "upscale_video"]
