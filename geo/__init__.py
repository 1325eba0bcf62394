"""Geography of the city: its nested areas, the demo city, loading real boundaries and placing points."""
