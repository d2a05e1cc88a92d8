"""The accuracy pass: datasets, preprocessing, metrics (top-k, mAP) and the evaluation the worker runs."""
