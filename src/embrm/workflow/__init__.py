"""What the Snakefile needs: config checks, experiment folders and studies, the scripts' glue."""
