"""Active reward modeling: choose the pairs to annotate in rounds, train on them, and
the learning curve of metrics against the number of annotated pairs."""
