"""Canonical data arrays from the synthetic generator or the published release."""


rule synthetic_data:
    output:
        **{
            f"{split}_{kind}": data_layout.file_pattern("synthetic", kind).format(
                split=split
            )
            for split in ("train", "test")
            for kind in ("embeddings", "rewards")
        },
    log:
        f"{MAIN}/logs/synthetic_data.log",
    benchmark:
        f"{MAIN}/benchmarks/synthetic_data.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        synthetic=lambda wc: config["data"]["synthetic"],
    script:
        "../scripts/synthetic_data.py"


rule import_release:
    input:
        release=lambda wc: release_files(DATA_VARIANTS.release(wc.tag), wc.split),
    output:
        embeddings=data_layout.file_pattern("import", "embeddings"),
        rewards=data_layout.file_pattern("import", "rewards"),
    log:
        f"{MAIN}/logs/import_release/{{tag}}_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/import_release/{{tag}}_{{split}}.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        release=lambda wc: DATA_VARIANTS.release(wc.tag),
    script:
        "../scripts/import_release.py"
