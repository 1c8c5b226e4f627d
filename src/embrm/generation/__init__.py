"""Steps 1-4: SFT, sampling, golden annotation and embeddings, feeding the canonical arrays."""
