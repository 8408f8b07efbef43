"""The train state, the optimiser and the sharded train step.

The batch is split over all devices of all processes (one `data` mesh axis) and the
parameters are replicated; the step is one jitted, donated, pure function of (state, batch,
schedule span).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec as P

from d2ljax import losses
from d2ljax.model import D2LNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The last convolution of each image head: zero kernel and bias make out_1 == out_2 == input.
IDENTITY_INIT_CONVS = (("sam12", "conv2"), ("last", "conv_last"), ("last2", "conv_last"))


@struct.dataclass
class TrainState:
    """Everything a checkpoint holds. ema_params is None when config.ema_decay == 0."""
    step: jnp.ndarray
    params: Any
    opt_state: Any
    ema_params: Any = None


def export_params(state: TrainState):
    """The parameters to evaluate and export: the EMA when kept, else the trained ones."""
    return state.params if state.ema_params is None else state.ema_params


def make_model(config: ml_collections.ConfigDict, dtype=None) -> D2LNet:
    return D2LNet(in_chn=1 if config.mode == "gray" else 3, wf=config.wf, depth=config.depth,
                  relu_slope=config.relu_slope, dtype=dtype)


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam's moments (after optional clipping) without the learning rate, which train_step
    applies: the 'budget' schedule's end is known only while the run goes."""
    clip = [optax.clip_by_global_norm(config.grad_clip_norm)] if config.grad_clip_norm > 0 else []
    return optax.chain(*clip, optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps))


def identity_init(params):
    """Zeroes the last conv of each image head so the fresh network returns its input.

    With PyTorch's default initialisation the heads add a random image and training starts far
    below the JPEG input; from the identity every step improves on it.
    """
    def zero_head(path, x):
        keys = tuple(getattr(k, "key", None) for k in path[:2])
        return jnp.zeros_like(x) if keys in IDENTITY_INIT_CONVS else x
    return jax.tree_util.tree_map_with_path(zero_head, params)


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D `data` mesh over the given devices (default: all devices of all processes).

    Auto axes: XLA propagates the batch sharding through the model, so model code needs no
    sharding annotations (Explicit axes would reject e.g. reshapes of the sharded batch).
    """
    devices = jax.devices() if devices is None else devices
    return jax.make_mesh((len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices)


def init_key(seed: int) -> jax.Array:
    """The parameter-initialisation key. XLA:CPU takes minutes to compile threefry draws for
    D2LNet's ~200 parameter arrays and seconds for the RngBitGenerator ('unsafe_rbg')."""
    return jax.random.key(seed, impl="unsafe_rbg")


def create_train_state(config: ml_collections.ConfigDict, model: D2LNet, tx: optax.GradientTransformation,
                       mesh: jax.sharding.Mesh, params=None) -> TrainState:
    """Fresh state, replicated over the mesh: the given parameters, else new ones from
    config.seed (identity heads when config.identity_init); Adam moments; EMA parameters when
    config.ema_decay > 0."""
    def init(params):
        if params is None:
            params = model.init(init_key(config.seed), model.init_input())["params"]
            params = identity_init(params) if config.identity_init else params
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          ema_params=params if config.ema_decay > 0 else None)
    return jax.jit(init, out_shardings=NamedSharding(mesh, P()))(params)


def ema_decay_at(step, ema_decay: float):
    """The EMA's decay at `step`: ema_decay, capped at (1 + step) / (10 + step) early on so the
    average soon forgets the initial parameters (with 0.999 from step 0, 41% of the average
    after 900 steps would still be the initialisation)."""
    return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


def train_step(state: TrainState, batch, span, *, model: D2LNet, tx: optax.GradientTransformation,
               lr_fn, loss_weights: dict, ema_decay: float):
    """One Adam step on the dual-domain loss of a (degraded, clean) batch: (state, metrics).

    span: int32 (start, end) of the learning-rate schedule (d2ljax.schedules).
    """
    degraded, clean = batch

    def loss_fn(params):
        out_1, _, _, out_2 = model.apply({"params": params}, degraded)
        return losses.dual_domain_loss(out_1, out_2, clean, **loss_weights)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = lr_fn(state.step, span[0], span[1])
    updates = jax.tree.map(lambda u: jnp.asarray(-lr, u.dtype) * u, updates)
    params = optax.apply_updates(state.params, updates)
    ema_params = (None if state.ema_params is None
                  else optax.incremental_update(params, state.ema_params, 1.0 - ema_decay_at(state.step, ema_decay)))
    step_metrics = {"loss": loss, **terms, "grad_norm": optax.global_norm(grads), "lr": lr}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         ema_params=ema_params), step_metrics


def make_train_step(config: ml_collections.ConfigDict, model: D2LNet, tx, lr_fn, mesh):
    """train_step jitted over the mesh: batch split on `data`, state replicated and donated.

    The result is called as step(state, batch, schedules.schedule_span(start, end)).
    """
    replicated = NamedSharding(mesh, P())
    step = functools.partial(
        train_step, model=model.clone(dtype=DTYPES[config.dtype]), tx=tx, lr_fn=lr_fn,
        loss_weights={k: config[k] for k in ("l1_weight", "amp_weight", "phase_weight")},
        ema_decay=config.ema_decay)
    return jax.jit(step, in_shardings=(replicated, NamedSharding(mesh, P("data")), replicated),
                   out_shardings=replicated, donate_argnums=0)


def global_batch(batch, mesh: jax.sharding.Mesh):
    """This process's rows of the batch -> global arrays split over the mesh's `data` axis."""
    sharding = NamedSharding(mesh, P("data"))
    return tuple(jax.make_array_from_process_local_data(sharding, x) for x in batch)
