"""Tag-driven presets (pure): topic tags + the preset table -> the encoding settings they choose, and why.

A tag applies its topic's preset when its calibrated score reaches the table's min_score. Each setting comes
from the highest-scoring applying tag that sets it, so a clip tagged "sports 0.9, street 0.6" takes its GOP
limits from the sports preset and, say, an analyzer weight only the street preset sets from street. Settings
the user gave explicitly (`keep`) are left alone: the user's flag beats the table.
"""
from __future__ import annotations

from codec_assist.schemas import PresetChoice, PresetTable

SCALARS = ("min_gop", "max_gop", "max_dqp", "strength", "time_constant", "aq_mode", "aq_strength")


def choose(tags: list[tuple[str, float]], topic_preset: dict[str, str | None], table: PresetTable,
           keep: frozenset[str] = frozenset()) -> list[PresetChoice]:
    """`tags`: (topic id, calibrated score); `topic_preset`: topic id -> preset name (or None).
    Returns one PresetChoice per setting changed; weights appear as settings 'weights.<analyzer>'."""
    chosen: dict[str, PresetChoice] = {}
    for tag, score in sorted(tags, key=lambda t: -t[1]):
        name = topic_preset.get(tag)
        if score < table.min_score or name is None or name not in table.presets:
            continue
        p = table.presets[name]
        values: dict[str, float] = {k: getattr(p, k) for k in SCALARS if getattr(p, k) is not None}
        values.update({f"weights.{a}": w for a, w in p.weights.items()})
        for setting, value in values.items():
            if setting not in chosen and setting not in keep:
                chosen[setting] = PresetChoice(setting=setting, value=value, tag=tag, score=round(score, 4),
                                               preset=name)
    _consistent_gops(chosen)
    return list(chosen.values())


def _consistent_gops(chosen: dict[str, PresetChoice]) -> None:
    """min_gop and max_gop may come from different tags; never let the minimum exceed the maximum."""
    lo, hi = chosen.get("min_gop"), chosen.get("max_gop")
    if lo is not None and hi is not None and lo.value > hi.value:
        lo.value = hi.value


def split(choices: list[PresetChoice]) -> tuple[dict[str, float], dict[str, float]]:
    """-> (plan option updates, analyzer weight updates)."""
    plan = {c.setting: c.value for c in choices if not c.setting.startswith("weights.")}
    weights = {c.setting.split(".", 1)[1]: float(c.value) for c in choices if c.setting.startswith("weights.")}
    if "aq_mode" in plan:
        plan["aq_mode"] = int(plan["aq_mode"])
    return plan, weights
