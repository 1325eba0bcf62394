"""Events, streams, aggregates and the read API: citydeck's data layer, free of any UI."""
