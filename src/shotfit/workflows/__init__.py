"""Single-run workflows (train, render, evaluate, export) that search and api build on."""
