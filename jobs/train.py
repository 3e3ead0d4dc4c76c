"""Train (fine-tune) the colorizer on colour photographs with Ray Train, checkpointing every epoch.

    python -m jobs.train --input ../shared/datasets/photos --split train --val-split val --output runs --name mse-1
    python -m jobs.train --input ../shared/datasets --input-list runs/keys/train.txt --val-list runs/keys/val.txt \
        --head classification --output runs --name cls-1      # several folders: keys relative to --input
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m jobs.train \
        --input s3://archive/colour-photos/ --output s3://archive/runs --name period-1 --workers 8 --use-gpu

A rerun with the same --output and --name and --resume goes on from the last checkpoint. The run folder
gets a checkpoint per epoch (model, optimizer, epoch), metrics.json (per epoch: train loss, and on the
validation photos loss, PSNR, CIEDE2000 and CF beside the grey baseline), and colorizer.keras: the file the
colorize job loads (--model). The recipe (head, loss, rebalancing, unfrozen blocks, learning rate) is
colorize_core.training's, the same as jobs/train_gpu.py's (one GPU, no Ray).
"""
import argparse
import json
import os
import sys

from jobs import add_input_flags, add_recipe_flags, add_validation_flags, settings_from_environment
from colorize_core import pipeline, runtime, training
from colorize_core.model_file import Head
from colorize_core.storage import Location, select_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_flags(p, "folder or s3://bucket/prefix of colour photographs")
    add_validation_flags(p, limit=100)
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="without --val-split or --val-list, this fraction of the photos (at least one; the same "
                        "ones on every run, chosen by a hash of the key) is held out for validation; 0 for none")
    p.add_argument("--output", required=True, help="folder or s3://bucket/prefix holding the runs")
    p.add_argument("--name", required=True, help="the run's name: its folder under --output")
    p.add_argument("--resume", action="store_true", help="go on from the run's last checkpoint")
    add_recipe_flags(p, batch_size=8, learning_rate=1e-4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-failures", type=int, default=2, help="restarts from the last checkpoint after a lost worker")
    return settings_from_environment(p).parse_args(argv)


def training_targets(keys: list[str], source: Location) -> list:
    """ab targets of (up to training.CLASS_SAMPLE of) the training photos, made in parallel on the cluster."""
    import numpy as np

    sample = keys[:: max(1, len(keys) // training.CLASS_SAMPLE)][: training.CLASS_SAMPLE]
    batches = pipeline.keys_dataset(sample, 8).map_batches(
        training.training_photos, fn_kwargs={"source": source}, batch_format="numpy")
    rng = np.random.default_rng(0)
    return [ab for batch in batches.iter_batches(batch_size=64, batch_format="numpy")
            for ab in training.targets_of(batch["photos"], batch["sizes"], rng)]


def starting_model(args: argparse.Namespace, recipe: training.Recipe, keys: list[str], source: Location,
                   runs: Location) -> tuple[str, list | None]:
    """Writes the model the run starts from (training.start_model) to NAME/init.keras, where every worker can
    read it; returns its key and the regression head's rebalancing weights, if the recipe asks for them."""
    import tempfile

    from colorize_core.model import head_of, load_colorizer

    init = load_colorizer(args.init_model)
    targets = training_targets(keys, source) if training.needs_targets(init, recipe) else []
    model, mse_weights = training.start_model(init, recipe, targets)
    if head_of(model) == Head.CLASSIFICATION:
        print(f"colour classes: {model.get_layer('annealed_mean').centres.shape[0]} ab bins")
    with tempfile.TemporaryDirectory() as folder:
        model.save(os.path.join(folder, "init.keras"))
        runs.write_atomic(f"{args.name}/init.keras", open(os.path.join(folder, "init.keras"), "rb").read())
    # Beside it, what a resumed run needs too: the regression head's rebalancing weights come from the photos.
    runs.write_atomic(f"{args.name}/start.json", json.dumps({"mse_weights": mse_weights}).encode())
    return f"{args.name}/init.keras", mse_weights


def write_run_folder(runs: Location, name: str, recipe: training.Recipe, final: str, init_key: str,
                     mse_weights: list | None, state: dict) -> None:
    """NAME/ as a run folder of colorize_core.trainer's (run.json, decoder.npz, encoder_BLOCK.npz), beside
    colorizer.keras: `jobs.train_gpu --out NAME --export` and `--resume-from NAME` read it as they read their own."""
    import tempfile
    from pathlib import Path

    from colorize_core import trainer
    from colorize_core.model import load_colorizer

    with tempfile.TemporaryDirectory() as folder:
        init = os.path.join(folder, "init.keras")
        open(init, "wb").write(runs.read(init_key))
        model = load_colorizer(final)  # its colour classes are the init model's: the run trained on them
        run = {**trainer.run_record(recipe, model, init, mse_weights), "history": state["history"],
               "epochs": state["epoch"], "init_model": f"{runs.root}/{init_key}", "launcher": "jobs.train (Ray Train)",
               "finished": True}
        trainer.save_run(Path(folder) / "run", model, recipe, run)
        for path in sorted((Path(folder) / "run").iterdir()):
            runs.write_atomic(f"{name}/{path.name}", path.read_bytes())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.prepare_environment()  # before ray is imported
    import ray
    import ray.train
    from ray.train.tensorflow import TensorflowTrainer

    source, runs = Location(args.input, args.s3_endpoint), Location(args.output, args.s3_endpoint)
    source.check_access()
    if runs.exists(f"{args.name}/metrics.json") and not args.resume:
        raise SystemExit(f"run {args.name} exists under {args.output}: pass --resume to go on, or another --name")
    if args.head == Head.REGRESSION and args.default_temperature is not None:
        raise SystemExit("--default-temperature is for the classification head (--head classification)")
    keys = select_keys(source, args.split, args.input_list, args.limit)
    if not keys:
        raise SystemExit(f"no photos found under {args.input}")
    if args.val_split or args.val_list:
        val_keys = select_keys(source, args.val_split, args.val_list)
        if set(val_keys) & set(keys):
            raise SystemExit("the validation photos overlap the training photos: validation must be held out")
    else:
        keys, val_keys = training.split_validation(keys, args.val_fraction)
    val_keys = val_keys[: args.val_limit]
    recipe = training.Recipe.from_args(args)
    runtime.start_ray()
    if args.resume and runs.exists(f"{args.name}/start.json"):
        init_key, mse_weights = f"{args.name}/init.keras", json.loads(runs.read(f"{args.name}/start.json"))["mse_weights"]
    else:
        init_key, mse_weights = starting_model(args, recipe, keys, source, runs)
    datasets = {"train": pipeline.keys_dataset(keys, 8).map_batches(
        training.training_photos, fn_kwargs={"source": source}, batch_format="numpy")}
    if val_keys:
        datasets["val"] = pipeline.keys_dataset(val_keys, 8).map_batches(
            training.validation_examples, fn_kwargs={"source": source}, batch_format="numpy")
    print(f"training the {recipe.head} head on {len(keys)} photos, validating on {len(val_keys)}")
    storage = runs.root if runs.is_s3 else os.path.abspath(args.output)
    trainer = TensorflowTrainer(
        training.train_loop_per_worker,
        train_loop_config={"runs": args.output if runs.is_s3 else os.path.abspath(args.output),
                           "endpoint": args.s3_endpoint, "init_key": init_key,
                           "recipe": recipe.to_json(), "epochs": args.epochs, "mse_weights": mse_weights,
                           "validate": bool(val_keys)},
        scaling_config=ray.train.ScalingConfig(num_workers=args.workers, use_gpu=args.use_gpu,
                                               resources_per_worker={"CPU": args.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=args.name, storage_path=storage,
                                       storage_filesystem=runs.fs if runs.is_s3 else None,
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=3),
                                       failure_config=ray.train.FailureConfig(max_failures=args.max_failures)),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),  # rank 0 validates on all of "val"
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        runs.write_atomic(f"{args.name}/colorizer.keras", open(os.path.join(folder, "colorizer.keras"), "rb").read())
        state = json.load(open(os.path.join(folder, "state.json")))
        write_run_folder(runs, args.name, recipe, os.path.join(folder, "colorizer.keras"), init_key, mse_weights, state)
    state["recipe"] = recipe.to_json()
    runs.write_atomic(f"{args.name}/metrics.json", json.dumps(state, indent=1).encode())
    print(f"trained to epoch {state['epoch']}; {args.output.rstrip('/')}/{args.name}/colorizer.keras; last: {state['history'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
