"""`python -m trt_mass.cli` runs `trtmass` (the tests start the watch daemon this way)."""

from trt_mass.cli import main

main()
