"""Training pairs (JPEG-degraded, clean) from grain: the input pipeline without TensorFlow.

Gives the same batches as `d2ljax.data` (tf.data) bit for bit: both take what each sample is
from `d2ljax.samples` (the images, every random draw); here its NumPy/Pillow ops run in grain
worker processes. Each element of the grain dataset is one whole batch, made by one worker;
workers send uint8 and the float conversion happens in this process (4x less to pass
between processes). "tfds:" sources need TensorFlow and stay with tf.data.
"""
from __future__ import annotations

import functools
import os
import signal
from typing import Iterator, Optional, Sequence

import grain
import numpy as np
from absl import flags

from d2ljax import samples

_MAX_STEP = 2**40
# Batches each worker prepares ahead of the one being consumed.
BUFFER_PER_WORKER = 2


def default_workers() -> int:
    """Worker processes when not given: one per core but one (the trainer's), at most 16; none
    below 4 cores, where grain's reader threads in this process are faster (benchmarks/README.md)."""
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(cores - 1, 16)


def _leave_ctrl_c_to_the_trainer(worker_index: int, worker_count: int) -> None:
    """Run in each worker as it starts: a terminal's Ctrl-C reaches every process of the group,
    and the trainer, not the workers, decides what it means (d2ljax.stop_signals); the
    workers end when the trainer closes the iterator."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _to_float(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return samples.to_float(batch[0]), samples.to_float(batch[1])


def make_dataset(
    source: str | Sequence[str] | None = None,
    *,
    batch_size: int,
    start_step: int = 0,
    process_index: Optional[int] = None,
    process_count: Optional[int] = None,
    cache_budget_mb: float = 4096,
    workers: Optional[int] = None,
    **recipe,
) -> grain.IterDataset:
    """An infinite grain.IterDataset of batches (degraded, clean), float32 in [0, 1], NHWC.

    Args as d2ljax.data.make_dataset (the same batches for the same arguments), but for:
      workers: grain worker processes making batches (None: default_workers(); 0: make them
        in this process, in grain's reader threads).
    """
    recipe = samples.Recipe(**recipe)
    process_index, process_count = samples.process_share(process_index, process_count)
    names = samples.list_files(source, process_index, process_count)
    store = samples.load_store(names, names, None, recipe.mode, recipe.crop, cache_budget_mb)
    workers = default_workers() if workers is None else workers
    if workers > 0:
        store.share_by_file()
    samples.log.info("%d images for process %d/%d, %s; %d grain workers", len(store.heights), process_index,
                     process_count, type(store).__name__, workers)
    make_batch = functools.partial(samples.make_batch, store, recipe, process_index, batch_size=batch_size)
    ds = grain.MapDataset.range(start_step, _MAX_STEP).map(make_batch)  # step -> uint8 batch
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1 if workers else 2, prefetch_buffer_size=2))
    if workers > 0:
        if not flags.FLAGS.is_parsed():  # grain's workers read an absl flag; outside an absl app
            flags.FLAGS.mark_as_parsed()  # nothing parsed them: their defaults are the values
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                         per_worker_buffer_size=BUFFER_PER_WORKER),
                            worker_init_fn=_leave_ctrl_c_to_the_trainer)
    return ds.map(_to_float)


def make_train_iterator(source: str | Sequence[str] | None = None, **kwargs
                        ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """make_dataset(source, **kwargs) as an iterator of NumPy (degraded, clean) batches."""
    return iter(make_dataset(source, **kwargs))
