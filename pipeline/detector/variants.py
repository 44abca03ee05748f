"""The variant string: ``"ssd"`` or a ``'+'``-joined subset of the improvements.

``"shallow+fem"`` and ``"fem+shallow"`` name the same model; :func:`parse_variant`
returns a canonical :class:`Variant` and rejects unknown parts and combinations that
make no sense.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import ConfigError

#: Known improvements, in canonical order (METHODS.md §4).
PARTS = ("shallow", "fem", "atss", "mdssd")


@dataclass(frozen=True)
class Variant:
    """Which improvements are on.

    Attributes:
        shallow: extra source on conv3_3 (75²) with 30-px boxes and IoU 0.3 matching there.
        fem: Feature-Enhancement Module (3×3 conv → BN → Mish) on every source larger than 1×1.
        atss: Adaptive Training Sample Selection (Zhang et al. 2020) instead of IoU thresholds.
        mdssd: deconvolution fusion modules (Xu et al., MDSSD) replace conv4_3/fc7 sources.
    """

    shallow: bool = False
    fem: bool = False
    atss: bool = False
    mdssd: bool = False

    @property
    def name(self) -> str:
        """Canonical variant string (``"ssd"`` when nothing is on)."""
        on = [p for p in PARTS if getattr(self, p)]
        return "+".join(on) if on else "ssd"


def parse_variant(text: str, key: str = "model.variant") -> Variant:
    """Parse ``"ssd"`` / ``"shallow+fem+atss"`` into a :class:`Variant`.

    Raises:
        ConfigError: naming ``key`` on an unknown or repeated part, ``ssd`` mixed with
            others, or ``shallow+mdssd`` (MDSSD already predicts on conv3_3 via Module1).
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{key}: expected 'ssd' or a '+'-joined subset of {list(PARTS)}, got {text!r}")
    parts = [p.strip().lower() for p in text.split("+")]
    if parts == ["ssd"]:
        return Variant()
    for p in parts:
        if p == "ssd":
            raise ConfigError(f"{key}: 'ssd' is the baseline and cannot be combined ({text!r})")
        if p not in PARTS:
            raise ConfigError(f"{key}: unknown part {p!r} in {text!r} (known: ssd, {', '.join(PARTS)})")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"{key}: repeated part in {text!r}")
    v = Variant(**{p: True for p in parts})
    if v.shallow and v.mdssd:
        raise ConfigError(
            f"{key}: 'shallow+mdssd' makes no sense: MDSSD's Module1 already predicts on conv3_3 "
            "(fused with up-sampled conv8_2); use 'mdssd' alone"
        )
    return v
