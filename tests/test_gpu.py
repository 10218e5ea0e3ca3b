"""The CUDA path, where a GPU exists: fp16 autocast, channels_last, GPU JPEG decoding, device in the run's
identity. Elsewhere every test here is skipped with its reason (the CPU checks of the same logic are in
tests/test_run_options.py)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason=f"no CUDA GPU on this machine (torch {torch.__version__})")


def test_gpu_run_is_its_own_configuration_and_agrees_with_the_cpu(store):
    from harness.inference import InferenceOptions
    from harness.runner import run_classification
    from harness.suites import get_suite

    suite = get_suite("real")
    run = (lambda device, **kw: run_classification(store, suite, "efficientnet-lite0", limit=64, batch_size=32,
                                                   workers=0, quiet=True, device=device, skip_complete=True,
                                                   inference=InferenceOptions(**kw)))
    cpu, gpu = run("cpu"), run("cuda")
    gpu_decoded = run("cuda", decode="device")
    assert len({cpu, gpu, gpu_decoded}) == 3  # never resumed or skipped across devices or decoders
    meta = store.run_meta(gpu)
    assert (meta["device_type"], meta["precision"], meta["channels_last"], meta["graph"]) == (
        "cuda", "fp16", True, "eager")
    assert store.run_meta(cpu)["device_type"] == "cpu"
    rows = store.sql(f"""SELECT a.top_classes[1] AS cpu, b.top_classes[1] AS gpu, c.top_classes[1] AS nvjpeg
                         FROM predictions a JOIN predictions b USING (key) JOIN predictions c USING (key)
                         WHERE a.run_id = '{cpu}' AND b.run_id = '{gpu}' AND c.run_id = '{gpu_decoded}'""")
    assert len(rows) == 64
    # fp16 and nvjpeg + tensor resizing move a prediction now and then; more than two in 64 is a bug
    assert (rows["cpu"] != rows["gpu"]).sum() <= 2 and (rows["gpu"] != rows["nvjpeg"]).sum() <= 2


def test_cuda_out_of_memory_is_recognised():
    from harness.inference import is_out_of_memory

    free, _ = torch.cuda.mem_get_info()
    with pytest.raises(torch.OutOfMemoryError) as exc:
        torch.empty(free * 4, dtype=torch.uint8, device="cuda")
    assert is_out_of_memory(exc.value)
