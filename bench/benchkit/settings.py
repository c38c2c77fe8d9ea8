"""Run settings from the environment; every default keeps a run modest."""

import os
from dataclasses import dataclass, field


def _number(name, default, kind=int):
    value = os.environ.get(name)
    return kind(value) if value else default


def _numbers(name, default):
    value = os.environ.get(name)
    if not value:
        return default
    return [int(part.replace("_", "")) for part in value.split(",") if part.strip()]


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 2.0
    levels: list = field(default_factory=lambda: [1, 16, 64])
    concurrency: int = 16
    codes: int = 5000
    backends: list = field(default_factory=lambda: ["sqlite", "postgres"])
    scale: bool = True
    scale_clients: list = field(default_factory=lambda: [1, 10_000, 100_000])
    scale_tokens: list = field(default_factory=lambda: [1, 5_000_000])
    prune_rows: int = 500_000

    @classmethod
    def from_environment(cls, smoke):
        if smoke:
            return cls(duration=_number("BENCH_DURATION", 2.0, float), warmup=0.0,
                       levels=[16], backends=["sqlite"], scale=False)
        return cls(
            duration=_number("BENCH_DURATION", 10.0, float),
            warmup=_number("BENCH_WARMUP", 2.0, float),
            levels=_numbers("BENCH_LEVELS", [1, 16, 64]),
            concurrency=_number("BENCH_CONCURRENCY", 16),
            codes=_number("BENCH_CODES", 5000),
            backends=os.environ.get("BENCH_BACKENDS", "sqlite,postgres").split(","),
            scale=os.environ.get("BENCH_SCALE", "1") != "0",
            scale_clients=_numbers("BENCH_SCALE_CLIENTS", [1, 10_000, 100_000]),
            scale_tokens=_numbers("BENCH_SCALE_TOKENS", [1, 5_000_000]),
            prune_rows=_number("BENCH_PRUNE_ROWS", 500_000),
        )

    def describe(self):
        return {key: value for key, value in vars(self).items()}
