"""check_seed, resolve_device, check_memory, read_toml: one clear error naming the option."""

from __future__ import annotations

import pytest
import torch

from biofluxopt._util import (
    MEMORY_ENV,
    SEED_MAX,
    ConfigError,
    check_memory,
    check_seed,
    memory_limit_bytes,
    read_toml,
    resolve_device,
)


@pytest.mark.parametrize("seed", [0, 1, 2**32, SEED_MAX])
def test_seed_in_range_is_returned(seed):
    assert check_seed(seed) == seed


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**64, True, 1.5])
def test_seed_out_of_range_names_the_option(seed):
    with pytest.raises(ConfigError) as exc:
        check_seed(seed, option="--gan-seed")
    assert exc.value.field == "--gan-seed"
    assert "2**63 - 1" in str(exc.value)


def test_max_seed_is_accepted_by_every_generator():
    import random

    import numpy as np

    from biofluxopt._util import seed_everything

    seed_everything(SEED_MAX)
    np.random.default_rng(SEED_MAX)
    torch.Generator().manual_seed(SEED_MAX)
    random.Random(SEED_MAX)


def test_cpu_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "", "cpu:0:1"])
def test_unknown_device(name):
    with pytest.raises(ConfigError, match="unknown device") as exc:
        resolve_device(name)
    assert exc.value.field == "--device"


def test_cuda_when_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="CUDA is not available") as exc:
            resolve_device(name, option="--dev")
        assert exc.value.field == "--dev"


def test_cuda_index_beyond_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == "cuda:0"
    assert resolve_device("cuda") == "cuda"
    with pytest.raises(ConfigError, match="1 CUDA device"):
        resolve_device("cuda:1")


def test_mps_when_unavailable(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="MPS is not available"):
        resolve_device("mps")


def test_memory_default_limit_is_8_gb(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert memory_limit_bytes() == 8_000_000_000
    check_memory(8_000_000_000, "fits")
    with pytest.raises(ConfigError) as exc:
        check_memory(292_000_000_000, "protocol.toml: 1000000 patients × 36500 days")
    msg = str(exc.value)
    assert msg.startswith("protocol.toml: 1000000 patients")
    assert "292 GB" in msg and "8 GB" in msg and MEMORY_ENV in msg


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "0.5")
    assert memory_limit_bytes() == 500_000_000
    with pytest.raises(ConfigError, match=r"0\.5 GB"):
        check_memory(600_000_000, "x")
    monkeypatch.setenv(MEMORY_ENV, "1000")
    check_memory(600_000_000_000, "x")
    check_memory(10, "x", limit_bytes=10)
    with pytest.raises(ConfigError):
        check_memory(11, "x", limit_bytes=10)


@pytest.mark.parametrize("raw", ["lots", "-1", "0", "nan", "inf"])
def test_bad_memory_limit_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv(MEMORY_ENV, raw)
    with pytest.raises(ConfigError) as exc:
        check_memory(1, "x")
    assert exc.value.field == MEMORY_ENV


def test_read_toml_ok(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('days = 3\n[diet]\nb12_ug_per_day = 4.0  # µg\nnote = "é"\n')
    assert read_toml(path) == {"days": 3, "diet": {"b12_ug_per_day": 4.0, "note": "é"}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\xff\xfe\x89PNG", "not a UTF-8 text file"),
        ("days = 3".encode("utf-16"), "not a UTF-8 text file"),
        (b"days = [", "invalid TOML"),
        (b"days = 3\ndays = 4", "invalid TOML"),
    ],
)
def test_read_toml_errors_name_the_file_on_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        read_toml(path)
    assert exc.value.source == str(path)
    assert expected in str(exc.value)


def test_read_toml_missing_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        read_toml(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_toml(tmp_path)


def test_read_toml_nul_in_the_name():
    with pytest.raises(ConfigError, match="not a usable file name"):
        read_toml("p\0.toml")
