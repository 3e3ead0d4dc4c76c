"""Train (fine-tune) the colorizer on colour photographs with Ray Train, checkpointing every epoch.

    python -m jobs.train --input ../shared/datasets/photos --split train --val-split val --output runs --name mse-1
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m jobs.train \
        --input s3://archive/colour-photos/ --output s3://archive/runs --name period-1 --workers 8 --use-gpu

A rerun with the same --output and --name and --resume goes on from the last checkpoint. The run folder
gets a checkpoint per epoch (model, optimizer, epoch), metrics.json (per epoch: train loss, and on the
validation photos loss, PSNR, CIEDE2000 and CF beside the grey baseline), and colorizer.keras: the file the
colorize job loads (--model).
"""
import argparse
import json
import os
import sys

from jobs import settings_from_environment
from colorize_core import pipeline, training
from colorize_core.storage import Location
from jobs.colorize import DEFAULT_MODEL
from jobs.evaluate import evaluation_keys


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="folder or s3://bucket/prefix of colour photographs")
    p.add_argument("--split", help="take this split from INPUT/MANIFEST.csv (columns path, split)")
    p.add_argument("--input-list", help="Parquet, CSV or text file of keys relative to --input")
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--val-split", help="validate on this split of INPUT/MANIFEST.csv (default: hold out --val-fraction)")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="without --val-split, this fraction of the photos (at least one; the same ones on every run, "
                        "chosen by a hash of the key) is held out for validation; 0 for none")
    p.add_argument("--val-limit", type=int, default=100, help="validate on at most this many photos")
    p.add_argument("--output", required=True, help="folder or s3://bucket/prefix holding the runs")
    p.add_argument("--name", required=True, help="the run's name: its folder under --output")
    p.add_argument("--resume", action="store_true", help="go on from the run's last checkpoint")
    p.add_argument("--init-model", default=DEFAULT_MODEL, help="colorizer file to start from (default: the shipped one)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--use-gpu", action="store_true")
    p.add_argument("--cpus-per-worker", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8, help="per worker")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--loss", choices=("mse", "rebalanced"), default="mse")
    p.add_argument("--mix", type=float, default=0.5, help="rebalancing mix (with --loss rebalanced)")
    p.add_argument("--unfreeze", nargs="*", default=[], help="encoder blocks to train too, e.g. block5")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: mixed precision (float32 weights; fast on CPUs with AMX and on GPUs)")
    p.add_argument("--max-failures", type=int, default=2, help="restarts from the last checkpoint after a lost worker")
    p.add_argument("--s3-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"),
                   help="endpoint of an S3-compatible server (default: AWS_ENDPOINT_URL)")
    return settings_from_environment(p).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import ray
    import ray.train
    from ray.train.tensorflow import TensorflowTrainer

    from colorize_core import losses

    source, runs = Location(args.input, args.s3_endpoint), Location(args.output, args.s3_endpoint)
    source.check_access()
    if runs.exists(f"{args.name}/metrics.json") and not args.resume:
        raise SystemExit(f"run {args.name} exists under {args.output}: pass --resume to go on, or another --name")
    keys = evaluation_keys(source, args)
    if not keys:
        raise SystemExit(f"no photos found under {args.input}")
    keys, val_keys = training.split_validation(keys, args.val_fraction) if not args.val_split else \
        (keys, evaluation_keys(source, argparse.Namespace(split=args.val_split, input_list=None, limit=None)))
    val_keys = val_keys[: args.val_limit]
    pipeline.init_ray()
    rebalancing = None
    if args.loss == "rebalanced":  # the ab histogram of (a sample of) the training targets
        sample = training.training_examples({"key": np.array(keys[:200])}, source, seed=0)
        rebalancing = losses.rebalancing_weights(sample["ab"], args.mix).tolist()
    datasets = {"train": pipeline.keys_dataset(keys, 8).map_batches(
        training.training_examples, fn_kwargs={"source": source}, batch_format="numpy")}
    if val_keys:
        datasets["val"] = pipeline.keys_dataset(val_keys, 8).map_batches(
            training.validation_examples, fn_kwargs={"source": source}, batch_format="numpy")
    print(f"training on {len(keys)} photos, validating on {len(val_keys)}")
    storage = runs.root if runs.is_s3 else os.path.abspath(args.output)
    trainer = TensorflowTrainer(
        training.train_loop_per_worker,
        train_loop_config={"init_model": os.path.abspath(args.init_model), "unfreeze": args.unfreeze,
                           "batch_size": args.batch_size, "learning_rate": args.learning_rate, "epochs": args.epochs,
                           "loss": args.loss, "rebalancing": rebalancing, "precision": args.precision,
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
    runs.write_atomic(f"{args.name}/metrics.json", json.dumps(state, indent=1).encode())
    print(f"trained to epoch {state['epoch']}; {args.output.rstrip('/')}/{args.name}/colorizer.keras; last: {state['history'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
