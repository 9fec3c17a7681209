"""casvfs benchmarks: medians and ratios against floors and peers measured in the same run."""
