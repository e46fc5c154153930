"""Where a GPU's bare MobileNetV2 step spends its time: start-up, batch size, precision, layout,
CUDA graphs. One short script for one device call (docs/device.md).

The device run of 2026-12-04 measured a bare step (catdog.bare_step) of 4,325 img/s at 64 px and
batch 128 on an H200: about 30 ms for some 9 GFLOP, hundreds of times the arithmetic's floor, so
the step is bound by launching kernels, not by the GPU. This script measures what would move that:

- `start`: seconds to the first CUDA tensor, and the first step at each shape (cuDNN's
  autotuning under `cudnn.benchmark`), also with the autotuning off;
- `eager`: img/s of the bare step (cross-entropy + fused AdamW, bf16 autocast, channels_last, as
  the stages run) at batches 64 ... 2048, then fp32 (TF32) and the default memory layout at 128;
- `graph`: the same step captured whole in a CUDA graph (AdamW capturable), replayed.

What it found on the H200 (2026-12-04, torch 2.11, one call): benchmarks/README.md.

    python benchmarks/bench_gpu_step.py [--device auto|cpu|cuda] [--batches 64 128 ...]
        [--steps 20] [--budget 100] [--json out.json]

Each variant runs after warm-up steps, timed between CUDA synchronisations; one that fails prints
its error and the rest go on; once `--budget` seconds have passed the rest are skipped. On a CPU
only the eager rows run (a smoke test, not a GPU measurement).
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from catdog.bare_step import seconds_per_step
from catdog.device import pick_device
from catdog.models import student


def make_step(batch: int, size: int, device: torch.device, bf16: bool, channels_last: bool,
              capturable: bool = False):
    """A bare training step on fixed random tensors; returns (step, optimizer)."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = student().to(device).to(memory_format=layout).train()
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=cuda or None,
                                  capturable=capturable)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (batch,), device=device)

    def step() -> None:
        # cache_enabled=False: autocast's weight-cast cache must not outlive a graph capture
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    return step, optimizer


def eager(batch: int, size: int, device: torch.device, steps: int, bf16: bool = True,
          channels_last: bool = True) -> dict:
    step, _ = make_step(batch, size, device, bf16, channels_last)
    start = time.perf_counter()
    step()  # the first step at this shape: cuDNN autotuning, allocations
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - start
    seconds = seconds_per_step(step, steps, warmup=3, device=device)
    return {"first_step_s": round(first, 2), "ms_per_step": round(seconds * 1e3, 2),
            "img_per_s": round(batch / seconds, 1)}


def graphed(batch: int, size: int, device: torch.device, steps: int) -> dict:
    """The whole step (forward, backward, AdamW) captured once in a CUDA graph, then replayed."""
    step, _ = make_step(batch, size, device, bf16=True, channels_last=True, capturable=True)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graph asks
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    start = time.perf_counter()
    with torch.cuda.graph(graph):
        step()
    torch.cuda.synchronize(device)
    capture = time.perf_counter() - start
    seconds = seconds_per_step(graph.replay, steps, warmup=3, device=device)
    return {"capture_s": round(capture, 2), "ms_per_step": round(seconds * 1e3, 2),
            "img_per_s": round(batch / seconds, 1)}


def without_autotune(run):
    """`run` with cudnn.benchmark off (cuDNN's heuristics pick the kernels: no first-step search)."""
    def wrapped() -> dict:
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False
        try:
            return run()
        finally:
            torch.backends.cudnn.benchmark = before
    return wrapped


def plan(args: argparse.Namespace, device: torch.device) -> list[tuple[str, int, object]]:
    """(name, batch, run) in the order they run: the most telling first, since the budget may end
    the list (the first call's cuDNN autotuning took 15-27 s per shape on the H200)."""
    size, steps = args.size, args.steps
    rows = [("eager bf16 channels_last b128", 128, lambda: eager(128, size, device, steps)),
            ("eager, no autotune, b128", 128, without_autotune(lambda: eager(128, size, device, steps)))]
    rows += [(f"graph bf16 channels_last b{b}", b, lambda b=b: graphed(b, size, device, steps))
             for b in args.graph_batches]
    rows += [(f"eager bf16 channels_last b{b}", b, lambda b=b: eager(b, size, device, steps))
             for b in args.batches if b != 128]
    rows += [("eager fp32/TF32 channels_last b128", 128, lambda: eager(128, size, device, steps, bf16=False)),
             ("eager bf16 contiguous b128", 128,
              lambda: eager(128, size, device, steps, channels_last=False))]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--size", type=int, default=64, help="crop side in px (the stages' 64)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 2048, 512, 256, 64])
    parser.add_argument("--graph-batches", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds; later variants are skipped")
    parser.add_argument("--json", type=Path, help="write every row here too")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    device = pick_device(args.device, 0)  # on CUDA: cudnn.benchmark and TF32, as the stages
    torch.zeros(1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "first_tensor_s": round(time.perf_counter() - t0, 2),
                    "rows": []}
    print(f"{result['device']}, torch {result['torch']}: first tensor after {result['first_tensor_s']} s",
          flush=True)
    variants = [(name, batch, run) for name, batch, run in plan(args, device)
                if device.type == "cuda" or not name.startswith(("graph", "eager, no autotune"))]
    for name, batch, run in variants:
        row: dict = {"variant": name, "batch": batch}
        if time.perf_counter() - t0 > args.budget:
            row["skipped"] = "budget"
        else:
            try:
                row |= run()
            except Exception as err:  # noqa: BLE001 - one variant's failure ends that row only
                traceback.print_exc()
                row["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        row["elapsed_s"] = round(time.perf_counter() - t0, 1)
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'variant':40} {'img/s':>10} {'ms/step':>9} {'first/capture s':>16}")
    for row in result["rows"]:
        extra = row.get("first_step_s", row.get("capture_s", ""))
        print(f"{row['variant']:40} {row.get('img_per_s', row.get('error', row.get('skipped', ''))):>10} "
              f"{row.get('ms_per_step', ''):>9} {extra:>16}")


if __name__ == "__main__":
    main()
