"""TensorRT engines: the GPU module (gpu), build profiles (profiles), the build (build), the sidecar beside
every engine (sidecar) and the checks before one is loaded (checks).

Only gpu imports tensorrt or cuda-python, and only inside its functions: the sidecar, the checks and the
profiles are pure Python (tested without a GPU).
"""
