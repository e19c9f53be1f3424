"""Stage 4, planning: importance map -> encode plan (QP maps, IDRs, shot budgets, ladders)."""
