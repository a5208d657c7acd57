"""Checkpoints: the safetensors encoding, atomic writes, and files that must not load."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from advnets import CheckpointError
from advnets.checkpoint import (
    checkpoint_name,
    decode_state,
    encode_state,
    load_checkpoint,
    newest_loadable,
    save_checkpoint,
    write_atomic,
)


def test_nested_state_round_trips_exactly(tmp_path):
    optimizer = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    optimizer.zero_grad()
    sum(p.sum() for p in optimizer.param_groups[0]["params"]).backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),  # int keys, tuples (betas), tensors
        "rng": torch.get_rng_state(),
        "list": [1, 2.5, None, "x", torch.arange(3)],
        "empty": {},
    }
    path = tmp_path / "s.safetensors"
    save_checkpoint(path, state, {"config": {"a": [1, 2]}, "step": 7})
    loaded, metadata = load_checkpoint(path)
    assert metadata == {"config": {"a": [1, 2]}, "step": 7}
    assert set(loaded["optimizer"]["state"]) == {0, 1}  # keys keep their type
    assert torch.equal(loaded["rng"], state["rng"])
    assert loaded["list"][:4] == [1, 2.5, None, "x"] and torch.equal(loaded["list"][4], torch.arange(3))
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(loaded["optimizer"])  # torch accepts it back
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(fresh.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])


def test_encoding_refuses_objects_it_cannot_store():
    with pytest.raises(TypeError, match="cannot store an object"):
        encode_state({"bad": object()}, {})
    assert decode_state(encode_state({"x": [1, {"$y": 2}]}, {}), {}) == {"x": [1, {"$y": 2}]}


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    write_atomic(path, b"old contents")

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(CheckpointError, match="c.safetensors: cannot write \\(disk full\\); the previous file, if any, is untouched"):
        write_atomic(path, b"new contents that never land")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


class Exploit:
    """A pickle that creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_renamed_to_safetensors_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "step-000000010.safetensors"
    evil.write_bytes(pickle.dumps({"generator": Exploit(marker)}))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(evil)
    torch_saved = tmp_path / "torch.safetensors"
    torch.save({"generator": Exploit(marker)}, torch_saved)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(torch_saved)
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # the exploit is real: unpickling does run it
    assert marker.exists()


def good_checkpoint(path):
    save_checkpoint(path, {"w": torch.ones(1000)}, {"step": 1})
    return path.read_bytes()


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda data: data[:5], "file is truncated"),
        (lambda data: data[: len(data) // 2], "file is truncated|damaged safetensors file"),
        (lambda data: b"\xff" * 8 + data[8:], "not a safetensors file"),
        (lambda data: data[:8] + b"[" + data[9:], "not a safetensors file"),
        (lambda data: b"", "file is truncated"),
    ],
)
def test_broken_files_give_one_clear_error(tmp_path, mangle, message):
    path = tmp_path / "c.safetensors"
    path.write_bytes(mangle(good_checkpoint(path)))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    import safetensors.torch

    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not an advnets checkpoint"):
        load_checkpoint(path)


def test_newest_loadable_skips_broken_checkpoints_and_says_why(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path / checkpoint_name(step), {"w": torch.full((2,), float(step))}, {"step": step})
    (tmp_path / checkpoint_name(30)).write_bytes(b"\x00" * 3)
    path, state, metadata, skipped = newest_loadable(tmp_path)
    assert path.name == checkpoint_name(20) and metadata["step"] == 20
    assert len(skipped) == 1 and checkpoint_name(30) in skipped[0] and "truncated" in skipped[0]
    with pytest.raises(CheckpointError, match="no loadable checkpoint"):
        newest_loadable(tmp_path / "nothing-here")


@pytest.mark.parametrize("depth", [900, 100_000])
def test_deeply_nested_metadata_gives_one_line_not_a_recursion_error(tmp_path, depth):
    import safetensors.torch

    nested = "[" * depth + "]" * depth
    for name, metadata in (("state", {"format": "advnets.checkpoint/1", "state": nested}), ("config", {"format": "advnets.checkpoint/1", "state": "{}", "config": nested})):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(safetensors.torch.save({"w": torch.ones(1)}, metadata=metadata))
        with pytest.raises(CheckpointError, match="nested too deep|damaged checkpoint metadata") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    header = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    raw = tmp_path / "header.safetensors"
    raw.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match=str(raw)):
        load_checkpoint(raw)


def _tensor_offset(path, name: str) -> int:
    """Where tensor ``name``'s bytes start in a safetensors file."""
    import json
    import struct

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return 8 + length + json.loads(data[8 : 8 + length])[name]["data_offsets"][0]


def _nested_state():
    w = torch.randn(4, 3)
    return {"rng": torch.get_rng_state(), "w": w, "half": torch.ones(3, dtype=torch.bfloat16), "flag": torch.tensor(True),
            "negated": torch._neg_view(w), "row": w[1],  # a lazily negated view, and a view into w's storage
            "alone": torch._neg_view(torch.arange(3.0))}  # a negated view, its storage saved nowhere else


def test_views_round_trip_with_their_checksum(tmp_path):
    state = _nested_state()
    save_checkpoint(tmp_path / "c.safetensors", state, {})
    loaded, _ = load_checkpoint(tmp_path / "c.safetensors")
    assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("where", ["a tensor no other check reads", "the metadata"])
def test_a_byte_changed_after_writing_is_found_by_the_checksum(tmp_path, where):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _nested_state(), {"config": {"lr": 0.0002}, "step": 7})
    data = bytearray(path.read_bytes())
    if where == "the metadata":  # still valid JSON, same length: only the checksum can tell
        at = data.index(b"0.0002")
        data[at : at + 6] = b"0.0003"
    else:
        data[_tensor_offset(path, "rng") + 100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged checkpoint \\(its contents do not match their checksum"):
        load_checkpoint(path)


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    """Checkpoints of earlier releases have none."""
    import safetensors.torch

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _nested_state(), {"step": 7})
    tensors = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as f:
        header = dict(f.metadata())
    assert header.pop("checksum").startswith('"crc32:')
    safetensors.torch.save_file(tensors, path, metadata=header)
    state, metadata = load_checkpoint(path)
    assert metadata == {"step": 7} and torch.equal(state["half"], torch.ones(3, dtype=torch.bfloat16))


def test_newest_loadable_skips_a_checkpoint_whose_checksum_fails(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path / checkpoint_name(step), {"w": torch.full((2,), float(step))}, {"step": step})
    newest = tmp_path / checkpoint_name(20)
    data = bytearray(newest.read_bytes())
    data[_tensor_offset(newest, "w")] ^= 0x01
    newest.write_bytes(bytes(data))
    path, state, metadata, skipped = newest_loadable(tmp_path)
    assert path.name == checkpoint_name(10) and torch.equal(state["w"], torch.full((2,), 10.0))
    assert len(skipped) == 1 and "do not match their checksum" in skipped[0]
