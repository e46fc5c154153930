"""fp32 weights in two 16-bit halves that can travel apart (the device kit, catdog.device_kit).

Each float32 tensor is cut into its high 16 bits (sign, exponent and the top of the mantissa: a
bfloat16 number, truncated) and its low 16 bits. `join` puts the two back bit for bit; with the
high half alone it returns the bfloat16 truncation, a usable stand-in (relative error under 2^-7
for normal numbers). Other tensors (e.g. BatchNorm's int64 counters) travel whole with the high
half. A half is saved xz-compressed: the high half's exponent bits compress by about a third.
"""

from __future__ import annotations

import hashlib
import io
import lzma
from pathlib import Path

import numpy as np
import torch

State = dict[str, torch.Tensor]


def split(state: State) -> tuple[State, State]:
    """(high, low): for every float32 tensor of `state` its high bits as a bfloat16 tensor and its
    low bits as an int16 tensor; any other tensor whole in `high`."""
    high, low = {}, {}
    for key, value in state.items():
        if value.dtype != torch.float32:
            high[key] = value
            continue
        bits = value.detach().cpu().contiguous().numpy().view(np.uint32)
        high[key] = torch.from_numpy((bits >> 16).astype(np.uint16).view(np.int16)).view(torch.bfloat16)
        low[key] = torch.from_numpy((bits & 0xFFFF).astype(np.uint16).view(np.int16))
    return high, low


def join(high: State, low: State | None = None) -> State:
    """The float32 state of `split`'s halves: exact with `low`, bfloat16-truncated without."""
    out = {}
    for key, value in high.items():
        if value.dtype != torch.bfloat16:
            out[key] = value
        elif low is None:
            out[key] = value.float()  # bfloat16 -> float32 is exact: the high bits, zeros below
        else:
            top = value.view(torch.int16).numpy().view(np.uint16).astype(np.uint32) << 16
            bottom = low[key].numpy().view(np.uint16).astype(np.uint32)
            out[key] = torch.from_numpy((top | bottom).view(np.float32))
    return out


def digest(state: State) -> str:
    """sha256 of every tensor's name, dtype, shape and bytes, in key order: the same numbers."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)}\0".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save(path: Path, half: State) -> None:
    """torch.save of one half, xz-compressed."""
    buf = io.BytesIO()
    torch.save(half, buf)
    Path(path).write_bytes(lzma.compress(buf.getvalue()))


def load(path: Path) -> State:
    """A half written by `save`."""
    return torch.load(io.BytesIO(lzma.decompress(Path(path).read_bytes())), weights_only=True)
