"""What a turn cost: each stage of its record priced from a table of list prices.

The table is a YAML file (COZY_PRICES; providers/prices.yaml by default) keyed
provider -> model -> rates in USD. A stage served by a provider or model the
table does not name costs 0: the offline models run on this machine.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from orchestrator.turn_record import TurnRecord

DEFAULT_PRICES = Path(__file__).resolve().parent.parent / "providers" / "prices.yaml"


class PriceTableError(ValueError):
    pass


@dataclass(frozen=True)
class Rates:
    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    audio_in_per_minute: float = 0.0
    audio_out_per_minute: float = 0.0
    characters_per_1m: float = 0.0


_RATE_NAMES = {f.name for f in fields(Rates)}


class PriceTable:
    def __init__(self, rates: dict[tuple[str, str], Rates] | None = None):
        self.rates = rates or {}

    @classmethod
    def load(cls, path: Path = DEFAULT_PRICES) -> PriceTable:
        """Read and check the whole file; a bad one names the file and the field."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PriceTableError(f"{path}: cannot read the price table: {exc}") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise PriceTableError(f"{path}: expected a mapping of provider -> model -> prices")
        rates: dict[tuple[str, str], Rates] = {}
        for provider, models in data.items():
            if not isinstance(models, dict):
                raise PriceTableError(f"{path}: {provider}: expected a mapping of model -> prices")
            for model, prices in models.items():
                where = f"{path}: {provider}.{model}"
                if not isinstance(prices, dict):
                    raise PriceTableError(f"{where}: expected a mapping of prices")
                for name, value in prices.items():
                    if name not in _RATE_NAMES:
                        raise PriceTableError(f"{where}.{name}: unknown field (known: {', '.join(sorted(_RATE_NAMES))})")
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                        raise PriceTableError(f"{where}.{name}: expected a price in USD (a number >= 0), got {value!r}")
                rates[(str(provider), str(model))] = Rates(**{k: float(v) for k, v in prices.items()})
        return cls(rates)

    def rates_for(self, provider: str, model: str) -> Rates | None:
        return self.rates.get((provider, model))

    def price(self, record: TurnRecord) -> TurnRecord:
        """Set each stage's cost_usd from what it used; returns the record."""
        for stage in record.stages:
            rates = self.rates_for(stage.provider, stage.model)
            if rates is None:
                continue
            stage.cost_usd = ((stage.tokens_in or 0) * rates.input_per_1m / 1e6
                              + (stage.tokens_out or 0) * rates.output_per_1m / 1e6
                              + (stage.audio_in_s or 0) * rates.audio_in_per_minute / 60
                              + (stage.audio_out_s or 0) * rates.audio_out_per_minute / 60
                              + (stage.characters or 0) * rates.characters_per_1m / 1e6)
        return record
