"""The reproduction study and the benchmarks: they use every layer below (STYLE.md)."""
