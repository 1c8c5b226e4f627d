"""Standard benchmarks (RewardBench v1 and 2) scored with an ensemble or a bundle."""
