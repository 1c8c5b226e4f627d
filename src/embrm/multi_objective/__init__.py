"""Multi-objective reward models on frozen embeddings (ArmoRM's two stages): per-attribute
ridge regression, length decorrelation, a prompt-conditioned gating network trained with
Bradley-Terry on pairs, and pairs derived from ratings."""
