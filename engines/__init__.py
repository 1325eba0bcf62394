"""Domain engines: pure computations that understand the four jobs of a command center."""
