"""What a training run tells: metrics.jsonl and TensorBoard (MetricWriter), the window
summaries and speed figures it logs, the progress bar, and the lines for the user."""
from __future__ import annotations

import io
import json
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from d2ljax import console
from d2ljax.checkpoints import BEST_METRIC, METRICS_JSONL, SESSIONS_JSONL


class MetricWriter:
    """Scalars to WORKDIR/metrics.jsonl (one JSON object per line, with `step`) and scalars and
    pictures to TensorBoard event files in WORKDIR/tensorboard (the tensorboard package's own
    writer: no TensorFlow needed); written by process 0 only.

    `start_step`: the step the run resumes from. Rows of later steps, logged before an
    interruption and about to be logged again, are dropped from metrics.jsonl, and TensorBoard
    is told to drop its own (a SessionLog START at that step).
    """

    def __init__(self, workdir: str, start_step: int = 0):
        self._enabled = jax.process_index() == 0
        if not self._enabled:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._event, self._summary = event_pb2, summary_pb2
        path = os.path.join(workdir, METRICS_JSONL)
        keep_rows_until(path, start_step)
        self._jsonl = open(path, "a")
        self._events = EventFileWriter(os.path.join(workdir, "tensorboard"))
        self._events.add_event(event_pb2.Event(
            wall_time=time.time(), step=start_step,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def write(self, step: int, scalars: dict[str, float], pictures: dict[str, np.ndarray] | None = None) -> None:
        if not self._enabled:
            return
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        Summary = self._summary.Summary
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        values += [Summary.Value(tag=k, image=png_summary(Summary, v)) for k, v in (pictures or {}).items()]
        self._events.add_event(self._event.Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        self._events.flush()

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._events.close()


def keep_rows_until(path: str, step: int) -> None:
    """Drops the rows of metrics.jsonl logged after `step` (atomically: a temporary file, then
    a rename)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        with open(path + ".partial", "w") as f:
            f.writelines(kept)
        os.replace(path + ".partial", path)


def png_summary(Summary, image: np.ndarray):
    """A TensorBoard image summary of uint8 HxW or HxWxC."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image.reshape(image.shape[:2]) if image.shape[-1:] == (1,) else image).save(buffer, "PNG")
    channels = 1 if image.ndim == 2 else image.shape[-1]
    return Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=channels,
                         encoded_image_string=buffer.getvalue())


def summarise(window: list[dict]) -> dict[str, float]:
    """Means of the step metrics since the last log (lr: its latest value)."""
    host = jax.device_get(window)
    summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    summary["lr"] = float(host[-1]["lr"])
    return summary


def throughput(steps: int, seconds: float, input_waits: list[float], batch_size: int,
               train_flops: float) -> dict[str, float]:
    """Speed over a window of steps: steps and patches per second, achieved TFLOP/s (the
    convolutions' FLOPs, d2ljax.model.forward_flops, 3x for a step) and the mean time a step
    waited for its batch (the input pipeline keeps up when that is near 0)."""
    patches_per_s = steps * batch_size / seconds
    return {"steps_per_s": steps / seconds, "patches_per_s": patches_per_s,
            "tflops_per_s": patches_per_s * train_flops / 1e12, "input_wait_s": float(np.mean(input_waits))}


class StepBar:
    """The run's progress bar (process 0, unless disabled). Its clock starts when the first
    step ends: that step compiles (minutes on a CPU), and counting it would make the ETA
    promise hours for a run of minutes."""

    def __init__(self, total: int, initial: int, disable: bool):
        self.bar = console.progress_bar(total=total, initial=initial, unit="step",
                                        disable=disable or jax.process_index() != 0)
        self._started = False

    def step_done(self, total: int) -> None:
        """One more step of a run now expected to end at `total`."""
        if not self._started:
            self.bar.unpause()  # restart the clock: the compile is left out of rate and ETA
            self._started = True
        self.bar.total = total
        self.bar.update()

    def show(self, summary: dict[str, float]) -> None:
        """The latest logged loss, speed and validation PSNR beside the bar."""
        self.bar.set_postfix(loss=f"{summary['loss']:.4f}", patches_per_s=f"{summary['patches_per_s']:.1f}",
                             **({"val_psnr": f"{summary[BEST_METRIC]:.2f}"} if BEST_METRIC in summary else {}))

    def close(self) -> None:
        self.bar.close()


def record_session(workdir: str, start_step: int, end_step: int, wall_s: float, cpu_s: float) -> None:
    """Appends one train.py invocation to WORKDIR/sessions.jsonl (process 0): export sums them
    into model.json's training history (checkpoints.training_run). "device" is the kind of
    device that trained ('cpu', or e.g. 'NVIDIA H100 80GB HBM3'), so that CPU-hours are not
    mixed with an accelerator's."""
    if jax.process_index() != 0:
        return
    row = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "start_step": start_step, "end_step": end_step,
           "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1), "device": jax.devices()[0].device_kind}
    with open(os.path.join(workdir, SESSIONS_JSONL), "a") as f:
        f.write(json.dumps(row) + "\n")


def say(message: str) -> None:
    """One line for the user (process 0), above the progress bar."""
    if jax.process_index() == 0:
        tqdm.write(message, file=sys.stderr)


def report(summary: dict[str, float], workdir: str) -> None:
    """The run's result in a line or two."""
    if len(summary) < 2:  # nothing was trained
        return
    line = f"step {summary['step']}: loss {summary['loss']:.4f}"
    if BEST_METRIC in summary:
        line += (f", validation PSNR {summary[BEST_METRIC]:.3f} dB (JPEG {summary['val_psnr_jpeg']:.3f}, "
                 f"{summary['val_gain']:+.3f})")
    say(f"{line}\nmodel: {workdir} (evaluate.py --checkpoint={workdir}; metrics.jsonl, tensorboard/)")
