"""Command-line tools that run the engines over real or simulated data and print what they find."""
