"""colorize_core: the library behind the colorize jobs (Lab, model, storage, stages), usable without a Ray cluster."""
