"""Importers: public data files (CSV, JSON Lines, GeoJSON, Parquet) turned into citydeck events through a mapping
file, one module per kind of file and one shared core (``python -m importers``)."""
