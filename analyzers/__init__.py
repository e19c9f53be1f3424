"""Analyzers: one module per signal, each behind analyzers.base.Analyzer."""
