"""Canonical data arrays from the synthetic generator or the published release."""


localrules:
    synthetic_data,
    import_release,


rule synthetic_data:
    output:
        train_embeddings=f"{MAIN}/data/synthetic/train_embeddings.npy",
        train_rewards=f"{MAIN}/data/synthetic/train_rewards.npy",
        test_embeddings=f"{MAIN}/data/synthetic/test_embeddings.npy",
        test_rewards=f"{MAIN}/data/synthetic/test_rewards.npy",
    log:
        f"{MAIN}/logs/synthetic_data.log",
    benchmark:
        f"{MAIN}/benchmarks/synthetic_data.tsv"
    conda:
        CPU_ENV
    params:
        synthetic=lambda wc: config["data"]["synthetic"],
    script:
        "../scripts/synthetic_data.py"


rule import_release:
    input:
        release=lambda wc: wcfg.release_files(DATA.release(wc.tag), wc.split),
    output:
        embeddings=f"{MAIN}/data/import/{{tag}}/{{split}}_embeddings.npy",
        rewards=f"{MAIN}/data/import/{{tag}}/{{split}}_rewards.npy",
    log:
        f"{MAIN}/logs/import_release/{{tag}}_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/import_release/{{tag}}_{{split}}.tsv"
    conda:
        CPU_ENV
    params:
        release=lambda wc: DATA.release(wc.tag),
    script:
        "../scripts/import_release.py"
