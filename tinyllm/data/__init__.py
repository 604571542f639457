"""Data preparation: raw text in, token files out. Read the files in pipeline order:

sources.py (documents from a file, a folder or JSON Lines), clean.py (markup, Unicode,
whitespace), exact_dedup.py, quality.py, minhash.py and lsh.py (near duplicates), spool.py (the
documents kept between passes), report.py (what each stage removed), token_files.py (train.bin,
val.bin, meta.json) and pipeline.py, which ties them together as `prepare`. download.py
fetches Tiny Shakespeare; batches.py samples training windows from the token files.
"""
