"""Belleville MTSS data integration."""
