"""The shape limits that choose among `fastconv`'s forms on the CPU, in one place.

Each was set by timing the forms on one 2-core x86 machine (XLA:CPU, float32, batch 1 unless
said); another CPU may move them. benchmarks/cpu_tuning.md gives, for each, the measurement that
set it and the command that repeats it. fastconv reads them when it traces, so a same-process
experiment can patch them (then `jax.clear_caches()`: traced forms are cached by shape).
"""

# Weight gradient (`fastconv.cpu_weight_grad`)
SMALL_MAP = 64  # pixels per batch at or below which im2col's one product beats Winograd's tile transforms
ODD_MAP = 256  # odd maps (no Winograd form): im2col up to this many pixels per batch, XLA's above
FEW_INPUTS = 4  # input channels at or below which (the image's own convolution) XLA's gradient is fast...
FEW_INPUTS_MAP = 256 * 256  # ...on maps below this many pixels; im2col's single product wins from there
FEW_CHANNELS = 16  # input channels at or below which XLA's gradient beats Winograd's for batches...
BATCHED_MAP = 32 * 32  # ...of maps above this many pixels (per map)

# Forward pass and input gradient (`fastconv.cpu_conv`, `fastconv.cpu_input_grad`); few outputs also take
# `weight_grad_few_outputs`, and conv_taps stops at WINOGRAD_CHANNELS outputs (XLA:CPU fused it into Winograd's)
FEW_CHANNELS_ONE_SIDE = 4  # input (output) channels at or below which conv_taps (conv_project) beats XLA's
WINOGRAD_CHANNELS = 64  # channels in and out from which Winograd's 16 products beat XLA's direct form...
WINOGRAD_WORK = 2 ** 17  # ...given at least this many pixels (whole batch) x channels (the fewer of in, out)
