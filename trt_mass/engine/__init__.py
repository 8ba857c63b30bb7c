"""TensorRT engines: build profiles, the build itself, and the sidecar that ties an engine to its GPU.

Nothing here imports tensorrt or cuda-python at module level: the sidecar checks and the profile
loading are pure Python (tested without a GPU); `build` imports tensorrt inside build_engine().
"""

from __future__ import annotations
