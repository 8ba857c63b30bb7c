"""The machine facts a benchmark records (without a GPU here: an empty GPU list, never an error)."""

from __future__ import annotations

import shutil

from trt_mass.bench.machine import VERSION_PACKAGES, gpu_facts, machine_facts, peak_rss_mib


def test_facts_of_this_machine() -> None:
    facts = machine_facts()
    assert set(facts) == {"cpu_model", "logical_cores", "physical_cores", "usable_cores", "memory_total_mib", "gpus",
                          "load_average", "python", "platform", "versions"}
    assert facts["cpu_model"] and facts["logical_cores"] >= 1 and 1 <= facts["usable_cores"] <= facts["logical_cores"]
    assert facts["memory_total_mib"] > 0 and len(facts["load_average"]) == 3
    assert set(facts["versions"]) <= set(VERSION_PACKAGES) and "numpy" in facts["versions"]
    if shutil.which("nvidia-smi") is None:
        assert facts["gpus"] == [] == gpu_facts()
    assert peak_rss_mib() > 10
