"""What commands promise about their outputs: output paths checked against inputs, folders a
command owns, one run per folder (a lock), and atomic writes (docs/outputs.md)."""
